"""Trust on the real broker: signed writes apply on every replica, and what
an attacker with Write on the topic appends (tests/integration/rawcopy.c, a
kcat with edits) is quarantined with its reason while the next genuine
record still applies, with equal digests on every replica.

The forgeries: a genuine record and its checkpoint appended again; a
covered header edited (ctkn-schema-version: 3, which without signatures
paused the partition) and one duplicated; a record naming a key the
keyring lacks, and one naming a key outside its scope; a record relinked
onto a closed writer instance; unsigned records; a keyring record of a
lower version.
"""
import json
import os
import re
import subprocess
import time

from harness import (BROKERS, Env, Server, check, deploy_key, log_end_offsets,
                     main)

RAWCOPY = os.environ["CTKN_RAWCOPY"]


class Trusted:
    """An Env with a trust root, a keyring and a client_token.* writer."""

    def __init__(self, name="trust", partitions=3):
        self.env = Env(partitions=partitions, name=name, trust=False)
        self.root = self.env.path("root.key")
        self.env.ok("trust", "init", "--root-key", self.root)
        self.pub = self.root + ".pub"
        self.writer = self.env.path("writer.key")
        r = self.env.ok("trust", "key", "add", "--root-key", self.root,
                        "--name", "cli", "--scope", "client_token.*",
                        "--scope", "notification_setting.*",
                        "--out", self.writer)
        self.log_id = r.json["data"]["log_id"]
        self.vars = {"CTKN_TRUST_ROOT": self.pub,
                     "CTKN_WRITER_KEY": self.writer}

    def ok(self, *args, reader=False, **kw):
        v = dict(self.vars)
        if reader:
            v["CTKN_WRITER_KEY"] = ""
        return self.env.ok(*args, env=v, **kw)

    def ctkn(self, *args, **kw):
        return self.env.ctkn(*args, env=self.vars, **kw)

    def ends(self):
        return self.env.end_offsets()

    def replica(self, name):
        """A new reader's projection of the whole topic: stats, digest."""
        db = self.env.path(name)
        stats = self.ok("project", db=db, reader=True).json["data"]
        return stats, self.env.digest(db)

    def quarantined(self, db):
        r = self.ok("quarantine", db=db, reader=True)
        return [__import__("json").loads(x) for x in r.out.splitlines()]

    def close(self):
        self.env.close()


def copy(t, part, off, *edits):
    p = subprocess.run([RAWCOPY, BROKERS, t.env.topic, str(part), str(off),
                        *edits], capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, f"rawcopy failed: {p.stderr}")
    return tuple(int(x) for x in p.stdout.split())


def unsigned_copy(src_topic, part, off, dst_topic):
    """The record at part/off of src_topic appended to the same partition
    of dst_topic without its signing headers: what a writer that does not
    sign (a build from before signing, or an attacker) appends. Returns
    the copy's (partition, offset)."""
    p = subprocess.run([RAWCOPY, BROKERS, src_topic, str(part), str(off),
                        "drop:ctkn-writer", "drop:ctkn-seq",
                        "drop:ctkn-chain", f"to:{dst_topic}"],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, f"rawcopy failed: {p.stderr}")
    return tuple(int(x) for x in p.stdout.split())


def status(t, token, db=None):
    """verify's answer (exit 1 for a token that is not active)."""
    r = t.env.ctkn("verify", token, db=db,
                   env={"CTKN_TRUST_ROOT": t.pub, "CTKN_WRITER_KEY": ""})
    check(r.rc in (0, 1), f"{r}")
    return r.json["data"]["status"]


def create(t, name):
    """Create a token; returns (id, partition, offset of its record)."""
    before = t.ends()
    tok = t.ok("create", "--name", name).json["data"]
    after = t.ends()
    moved = [i for i in range(len(before)) if after[i] != before[i]]
    check(len(moved) == 1, f"one partition should move: {before} {after}")
    p = moved[0]
    # The record and its checkpoint, in one produce batch; a one-command
    # process closes its instance with that checkpoint (no closing one).
    check(after[p] - before[p] == 2, f"2 records expected: {before} {after}")
    return tok["id"], p, before[p]


def test_signed_writes_apply_alike_on_every_replica():
    t = Trusted("signed")
    try:
        ids = [create(t, f"tok {i}")[0] for i in range(4)]
        t.ok("revoke", ids[0])
        check(status(t, t.ok("get", ids[0]).json["data"]["token"])
              == "revoked", "revoked on the writer")
        sa, da = t.replica("a")
        sb, db_ = t.replica("b")
        check(sa["applied"] == 5 and sa["quarantined"] == 0, f"{sa}")
        check(da == db_, f"replica digests differ: {da} {db_}")
    finally:
        t.close()


def test_there_is_no_unsigned_mode():
    """No reader of the log runs without --trust-root, and no appender
    without --writer-key: each is a usage error (exit 2) naming the option,
    before it touches Kafka, and nothing is appended."""
    t = Trusted("nounsigned", partitions=2)
    try:
        tid = create(t, "kept")[0]
        secret = t.env.path("secret.key")
        with open(secret, "w") as f:
            f.write("a" * 64 + "\n")
        before = t.ends()
        none = {"CTKN_TRUST_ROOT": "", "CTKN_WRITER_KEY": ""}
        reader = {"CTKN_TRUST_ROOT": t.pub, "CTKN_WRITER_KEY": ""}
        readers = [("project",), ("project", "--follow"), ("rebuild",),
                   ("replay", "--as-of", "2030-01-01T00:00:00Z"),
                   ("tail", "--from-beginning", "--exit-at-end"),
                   ("serve", "--listen", "127.0.0.1:1"),
                   ("audit", "verify", t.env.path("none.ctkn")),
                   ("apikey", "list"), ("notification", "list")]
        appenders = [("create", "--name", "x"), ("revoke", tid),
                     ("update", tid, "--name", "y"),
                     ("apikey", "create", "--name", "k", "--permissions",
                      "client_token.read"),
                     ("destination", "add", "--url", "https://example.com/h",
                      "--events", "client_token.created",
                      "--secret-key-file", secret),
                     ("notification", "replay",
                      "ntf_01jyq3v5k8q9r0s1t2v3w4x5y8"),
                     ("notify", "--secret-key-file", secret)]
        for args in readers + appenders:
            r = t.env.ctkn(*args, env=none, db=t.env.path("x-db"),
                           timeout=20)
            check(r.rc == 2 and "--trust-root" in r.err, (args, r))
        for args in appenders:
            r = t.env.ctkn(*args, env=reader, db=t.env.path("y-db"),
                           timeout=20)
            check(r.rc == 2 and "--writer-key" in r.err, (args, r))
        check(t.ends() == before, (before, t.ends()))
        # The local reads answer from a projection a judged reader built.
        check(t.env.ctkn("get", tid, env=none).rc == 0, "get")
        # A reader with a root that is not the log's has no keyring to
        # judge by: it applies and quarantines nothing, and says why
        # (exit 3: that root's keyring may yet come).
        other = t.env.path("other.key")
        t.env.ok("trust", "init", "--root-key", other)
        r = t.env.ctkn("project", db=t.env.path("other-db"),
                       env={"CTKN_TRUST_ROOT": other + ".pub",
                            "CTKN_WRITER_KEY": ""})
        check(r.rc == 3 and "no keyring signed by the trust root" in r.err,
              r)
        q = t.env.ctkn("quarantine", db=t.env.path("other-db"))
        check(q.rc == 0 and q.out.strip() == "", f"quarantined: {q}")
        # tail says so too, rather than print nothing and exit 0.
        r = t.env.ctkn("tail", "--from-beginning", "--exit-at-end",
                       env={"CTKN_TRUST_ROOT": other + ".pub",
                            "CTKN_WRITER_KEY": ""})
        check(r.rc == 3 and "no keyring signed by the trust root" in r.err
              and r.out == "", r)
    finally:
        t.close()


def test_a_writer_key_outside_the_keyring_appends_nothing():
    t = Trusted("unknown")
    try:
        other = t.env.path("other.key")
        t.env.ok("trust", "init", "--root-key", other)
        before = t.ends()
        r = t.env.ctkn("create", "--name", "x",
                       env={"CTKN_TRUST_ROOT": t.pub, "CTKN_WRITER_KEY": other})
        check(r.rc == 1 and r.error["errors"][0]["field"] == "writer_key",
              f"{r}")
        check(t.ends() == before, "nothing appended")
        # Scoped out: a notifier's key may not write tokens.
        nkey = t.env.path("notify.key")
        t.env.ok("trust", "key", "add", "--root-key", t.root, "--name", "n",
                 "--scope", "notification.*", "--out", nkey)
        # (the keyring change itself is placed on every event partition)
        placed = t.ends()
        check(placed == [b + 1 for b in before], f"{before} {placed}")
        before = placed
        r = t.env.ctkn("create", "--name", "x",
                       env={"CTKN_TRUST_ROOT": t.pub, "CTKN_WRITER_KEY": nkey})
        check(r.rc == 1 and "writer_key" in r.err, f"{r}")
        check(t.ends() == before, "nothing appended")
    finally:
        t.close()


def test_forgeries_are_quarantined_and_the_next_genuine_record_applies():
    t = Trusted("forge")
    try:
        tid, p, off = create(t, "victim")
        other = t.env.path("other.key")
        r = t.env.ok("trust", "init", "--root-key", other)
        stranger = r.json["data"]["key_id"] + "." + "ab" * 16
        nkey = t.env.path("n.key")
        r = t.env.ok("trust", "key", "add", "--root-key", t.root, "--name",
                     "n", "--scope", "notification.*", "--out", nkey)
        scoped = r.json["data"]["key_id"] + "." + "cd" * 16
        # A replica that read the genuine prefix before the forgeries.
        t.replica("early")
        forged = [
            copy(t, p, off),                       # the record again
            copy(t, p, off + 1),                   # its checkpoint again
            copy(t, p, off, "set:ctkn-schema-version=3"),
            copy(t, p, off, "dup:ctkn-event-type=client_token.created"),
            copy(t, p, off, f"set:ctkn-writer={stranger}"),
            copy(t, p, off, f"set:ctkn-writer={scoped}"),
            copy(t, p, off, f"relink:{t.log_id}:{off}"),
        ]
        check(all(f[0] == p for f in forged), f"{forged}")
        # The genuine revoke after them is applied everywhere. The copies
        # carry the victim's create time; a pending one is given up once a
        # checkpoint is signed more than 1 s after that.
        time.sleep(1.2)
        t.ok("revoke", tid)
        token = t.ok("get", tid).json["data"]["token"]
        check(status(t, token) == "revoked",
              "the revoke after the forgeries applies on the writer")
        digests = []
        for name in ("early", "a", "b"):
            db = t.env.path(name)
            log = t.ok("project", db=db, reader=True).err
            # Each quarantine is a JSON log line, with this reader's detail.
            lines = [json.loads(x) for x in log.splitlines()
                     if '"record quarantined"' in x]
            check(len(lines) >= len(forged) and
                  all(x["component"] == "trust" and x["detail"]
                      for x in lines), f"{name}: {log}")
            digests.append(t.env.digest(db))
            q = {(x["partition"], x["offset"]): x["reason"]
                 for x in t.quarantined(db)}
            for f in forged:
                check(f in q, f"{name}: forgery at {f} not quarantined: {q}")
            st = status(t, token, db=db)
            check(st == "revoked", f"{name}: {st}")
            reasons = " | ".join(q[f] for f in forged)
            # Replays, edits and relinks are "not proven" everywhere (which
            # rule caught each is in the log line, and may depend on where
            # a reader's batches ended); test_gate covers each rule.
            for want in ("not proven", "twice", "not in the keyring",
                         "may not write"):
                check(want in reasons, f"{name}: no '{want}' in {reasons}")
        check(digests[0] == digests[1] == digests[2], f"{digests}")
        # tail shows what verifies: the create and the revoke, once each.
        r = t.ok("tail", "--from-beginning", "--exit-at-end", reader=True)
        events = [json.loads(x) for x in r.out.splitlines()]
        check([e["event_type"] for e in events if e["data"]["id"] == tid] ==
              ["client_token.created", "client_token.revoked"], f"{r.out}")
    finally:
        t.close()


def test_garbage_under_a_writers_header_does_not_hold_its_record():
    """A one-shot writer's record and its closing checkpoint, then garbage
    appended under that checkpoint's headers: a reader reading all three
    in one batch verifies only the newest checkpoint of the instance, the
    garbage. It refuses it, and must then verify the genuine one rather
    than hold the record for a proof a dead writer never writes."""
    t = Trusted("garbage")
    try:
        tid, p, off = create(t, "held")
        token = t.ok("get", tid).json["data"]["token"]
        garbage = copy(t, p, off + 1, "value:not a checkpoint")
        check(garbage == (p, off + 2), f"{garbage}")
        db = t.env.path("fresh")
        t.ok("project", db=db, reader=True)
        check(status(t, token, db=db) == "active",
              "the create before the garbage applies")
        q = {(x["partition"], x["offset"]): x["reason"]
             for x in t.quarantined(db)}
        check(list(q) == [garbage] and q[garbage].startswith("checkpoint: "),
              f"{q}")
    finally:
        t.close()


def test_unsigned_records_are_quarantined():
    t = Trusted("unsigned")
    try:
        tid, p, off = create(t, "real")
        raw = t.env.raw(p, tid, b"\x0a\x00", "client_token.revoked", "1")
        t.ok("revoke", tid)
        db = t.env.path("r")
        t.ok("project", db=db, reader=True)
        q = {(x["partition"], x["offset"]): x["reason"]
             for x in t.quarantined(db)}
        check(raw in q and "unsigned" in q[raw], f"{q}")
    finally:
        t.close()


def test_a_lower_keyring_version_is_ignored():
    t = Trusted("keyring")
    try:
        settings = t.env.topic + "_settings"
        t.env.ok("trust", "key", "add", "--root-key", t.root, "--name", "two",
                 "--scope", "client_token.*", "--out", t.env.path("k2"))
        # Version 1 appended again after version 2.
        p = subprocess.run([RAWCOPY, BROKERS, settings, "0", "0"],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, p.stderr)
        kr = t.ok("trust", "keyring").json["data"]
        check(kr["version"] == 2 and len(kr["keys"]) == 2, f"{kr}")
        # The second key still writes.
        r = t.env.ctkn("create", "--name", "k2",
                       env={"CTKN_TRUST_ROOT": t.pub,
                            "CTKN_WRITER_KEY": t.env.path("k2")})
        check(r.rc == 0, f"{r}")
    finally:
        t.close()


def test_destinations_are_signed_and_judged():
    t = Trusted("dest")
    try:
        key = deploy_key(t.env)
        add = ("destination", "add", "--url", "http://127.0.0.1:9/hook",
               "--events", "client_token.created", "--secret-key-file", key,
               "--allow-destination-network", "127.0.0.0/8")
        signed = t.ok(*add).json["data"]["id"]
        # An unsigned destination record, what an attacker could append:
        # one a writer of another log signed, its signing headers dropped.
        src = Trusted("dest-src")
        try:
            settings = src.env.topic + "_settings"
            before = log_end_offsets(settings)
            src.ok(*add)
            p = [i for i, o in enumerate(log_end_offsets(settings))
                 if o != before[i]][0]
            unsigned_copy(settings, p, before[p], t.env.topic + "_settings")
        finally:
            src.close()
        # A key without notification_setting.* may not add one.
        tok_only = t.env.path("tok.key")
        t.env.ok("trust", "key", "add", "--root-key", t.root, "--name", "t",
                 "--scope", "client_token.*", "--out", tok_only)
        r = t.env.ctkn(*add, env={"CTKN_TRUST_ROOT": t.pub,
                                  "CTKN_WRITER_KEY": tok_only})
        check(r.rc == 1 and "writer_key" in r.err, f"{r}")
        # Replicas read the settings topic (a notifier's pass does).
        db = t.env.path("judged")
        n = t.env.ctkn("notify", "--secret-key-file", key, db=db,
                       env=t.vars)
        check(n.rc == 0, f"{n}")
        r = t.env.ctkn("destination", "list", db=db, env=t.vars)
        check(r.rc == 0, f"{r}")
        judged = [d["id"] for d in r.json["data"]]
        check(judged == [signed], f"only the signed one: {judged}")
    finally:
        t.close()


def test_tail_from_mid_log_anchors_on_a_checkpoint():
    """A server's writer instance writes batch after batch; a tail that
    starts after its first batch has no state for it and anchors its
    chain where the next checkpoint's batch starts (from_sequence)."""
    t = Trusted("midlog", partitions=1)
    w = None
    try:
        w = Server(t.env, "w", args=("--trust-root", t.pub, "--writer-key",
                                     t.writer, "--heartbeat", "60"))
        ids = []
        for i in range(3):
            r = w.request("POST", "/client-tokens", {"name": f"n{i}"})
            check(r.status == 201, f"{r}")
            ids.append(r.json["data"]["id"])
            if i == 0:
                import datetime
                made = datetime.datetime.fromisoformat(
                    r.json["data"]["created_at"].replace("Z", "+00:00"))
                since = (made + datetime.timedelta(milliseconds=50)).strftime(
                    "%Y-%m-%dT%H:%M:%S.%fZ")
                time.sleep(0.1)
        r = t.ok("tail", "--from", since, "--exit-at-end", reader=True)
        got = [json.loads(x)["data"]["id"] for x in r.out.splitlines()]
        check(got == ids[1:], f"the later two, verified: {got} {r.err}")
        check("passed over" not in r.err, r.err)
    finally:
        if w is not None:
            w.stop(check_exit=False)
        t.close()


def test_a_revoked_key_is_refused_by_running_replicas():
    t = Trusted("revoke", partitions=1)
    w = r = None
    try:
        sign = ("--trust-root", t.pub, "--writer-key", t.writer)
        w = Server(t.env, "w", args=sign)
        r = Server(t.env, "r", args=("--trust-root", t.pub))
        a = w.request("POST", "/client-tokens", {"name": "before"})
        check(a.status == 201, f"{a}")
        pa = f"/client-tokens/{a.json['data']['id']}"
        wait_for("the replica to have it",
                 lambda: r.request("GET", pa, key="reader").status == 200)
        kr = t.env.ok("trust", "keyring", env={"CTKN_TRUST_ROOT": t.pub}
                      ).json["data"]
        key_id = kr["keys"][0]["key_id"]
        t.env.ok("trust", "key", "revoke", key_id, "--root-key", t.root)
        # Each replica judges by the revoking keyring once it has read it
        # (its /metrics says which). Writes in the window before that are
        # judged by the keyring each reader holds: see "Revocation" in
        # docs/architecture.md.
        want = f"ctkn_trust_keyring_version {kr['version'] + 1}"
        for s_ in (w, r):
            wait_for("the replica to read the revoke", lambda: want in
                     s_.request("GET", "/metrics", key=None).body)
        b = w.request("POST", "/client-tokens", {"name": "after"})
        check(b.status == 503 and
              "quarantined" in b.json["error"]["detail"], f"{b}")
        # The refused record is on no replica; the earlier one stays.
        stats, _ = t.replica("late")
        check(stats["quarantined"] >= 1, f"{stats}")
        wait_for("the running replica to refuse it", lambda: re.search(
            r'outcome="quarantined"\} [1-9]',
            r.request("GET", "/metrics", key=None).body))
        check(r.request("GET", pa, key="reader").status == 200, "kept")
        n = r.request("GET", "/client-tokens?status=active&per_page=200",
                      key="reader")
        check([x["name"] for x in n.json["data"]] == ["before"], f"{n}")
    finally:
        for s_ in (w, r):
            if s_ is not None:
                s_.stop(check_exit=False)
        t.close()


def test_a_schema_version_enabled_for_newer_readers_fails_this_one_closed():
    """Writers may emit version N only once the keyring enables it; a
    reader that cannot read N refuses that keyring and stops answering."""
    t = Trusted("schema", partitions=2)
    try:
        tok = t.ok("create", "--name", "before").json["data"]
        r = t.env.ctkn("trust", "schema", "enable", "1", "--root-key", t.root)
        check(r.rc == 2, f"version 1 needs no enabling: {r}")
        # This build reads 2 (API keys); 3 is newer than it.
        kr = t.ok("trust", "schema", "enable", "3", "--root-key",
                  t.root).json["data"]
        check(kr["schema_versions"] == [3], f"{kr}")
        db = t.env.path("reader")
        r = t.env.ctkn("project", db=db, env={"CTKN_TRUST_ROOT": t.pub,
                                              "CTKN_WRITER_KEY": ""})
        check("schema version 3" in r.err, f"{r}")
        for args in (("verify", tok["token"]), ("get", tok["id"]),
                     ("verify", "test_" + "b" * 27)):
            a = t.env.ctkn(*args, db=db)
            check(a.rc == 3 and "schema version 3" in a.err, f"{args}: {a}")
        st = t.ok("status", db=db, reader=True).json["data"]
        check(all(p["paused"] for p in st["partitions"]), f"{st}")
    finally:
        t.close()


def wait_for(what, cond, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_replica_fails_closed_when_heartbeats_stop():
    t = Trusted("stale")
    w = r = None
    try:
        sign = ("--trust-root", t.pub, "--writer-key", t.writer,
                "--heartbeat", "0.3", "--max-staleness", "3")
        w = Server(t.env, "w", args=sign)
        r = Server(t.env, "r", args=("--trust-root", t.pub,
                                     "--max-staleness", "3"))
        made = w.request("POST", "/client-tokens", {"name": "over http"})
        check(made.status == 201, f"{made}")
        tok = made.json["data"]["token"]
        path = f"/client-tokens/verify?token={tok}"
        wait_for("the replica to verify it",
                 lambda: r.request("GET", path, key="reader").status == 200)
        # The writer's records were signed: a fresh CLI replica applies
        # them and its heartbeats, and quarantines nothing.
        stats, _ = t.replica("cli")
        check(stats["applied"] == 1 and stats["quarantined"] == 0, f"{stats}")
        # No more heartbeats: the tail could be withheld from here on.
        w.stop()
        h = wait_for("healthz to fail closed",
                     lambda: (lambda x: x if x.status == 503 else None)(
                         r.request("GET", "/healthz", key=None)))
        check(h.json["data"]["status"] == "stale", f"{h}")
        m = wait_for("every partition stale in /metrics", lambda: (
            lambda b: b if "ctkn_trust_stale_partitions 3" in b else None)(
                r.request("GET", "/metrics", key=None).body))
        check('ctkn_trust_checkpoint_age_seconds{partition="0"}' in m, m)
        for p in (path, "/client-tokens/" + made.json["data"]["id"],
                  "/client-tokens",
                  "/client-tokens/verify?token=test_" + "n" * 27):
            a = r.request("GET", p, key="reader")
            check(a.status == 503 and
                  a.json["error"]["code"] == "service_unavailable" and
                  "checkpoint" in a.json["error"]["detail"], f"{p}: {a}")
        # Heartbeats again: answers again.
        w = Server(t.env, "w2", args=sign)
        wait_for("the replica to answer again",
                 lambda: r.request("GET", path, key="reader").status == 200)
    finally:
        for s in (w, r):
            if s is not None:
                s.stop(check_exit=False)
        t.close()


def tokens(t, db):
    """Every token of the projection in db (id, status, updated_at)."""
    out, after = [], None
    while True:
        args = ["list", "--per-page", "200", "--status", "active,revoked",
                "--stale-ok"]
        if after:
            args += ["--after", after]
        page = t.ok(*args, db=db, reader=True).json["data"]
        out += [(x["id"], x["status"], x["updated_at"]) for x in page]
        if len(page) < 200:
            return out
        after = page[-1]["id"]


def test_a_revoke_while_the_key_writes_is_judged_alike_everywhere():
    """No waiting for the replicas to read the revoke: a writer writes
    continuously while its key is revoked. The revoke's keyring record is
    a position on every event partition, so every replica (running ones,
    one restarted, a new one that reads the revoke before any event)
    applies what the key signed before it and quarantines what it signed
    after: equal digests and equal tokens."""
    t = Trusted("revrace", partitions=2)
    w = r = None
    try:
        sign = ("--trust-root", t.pub, "--writer-key", t.writer)
        w = Server(t.env, "w", args=sign)
        r = Server(t.env, "r", args=("--trust-root", t.pub))
        key_id = t.env.ok("trust", "keyring", env={"CTKN_TRUST_ROOT": t.pub}
                          ).json["data"]["keys"][0]["key_id"]
        import threading
        stop, answers = threading.Event(), []

        def write():
            i = 0
            while not stop.is_set():
                a = w.request("POST", "/client-tokens", {"name": f"t{i}"})
                answers.append(a.status)
                i += 1
        th = threading.Thread(target=write)
        th.start()
        try:
            wait_for("some writes", lambda: answers.count(201) >= 20)
            t.env.ok("trust", "key", "revoke", key_id, "--root-key", t.root)
            wait_for("a refused write", lambda: 503 in answers, timeout=30)
            time.sleep(0.5)
        finally:
            stop.set()
            th.join()
        w.stop(check_exit=False)  # no more heartbeats: the log ends here
        ends = t.ends()
        # A new replica: it reads the revoke before any event record.
        late_stats, late = t.replica("late")
        check(late_stats["applied"] >= 20, f"{late_stats}")
        check(late_stats["quarantined"] >= 1, f"{late_stats}")
        # The writer's own projection, restarted and caught up.
        t.ok("project", db=w.db, reader=True)
        check(t.env.digest(w.db) == late, f"{t.env.digest(w.db)} {late}")
        # The replica that ran all along, once it has read to the end.
        wait_for("the running replica to agree",
                 lambda: t.env.digest(r.db) == late, timeout=30)
        r.stop(check_exit=False)
        r = None
        check(t.ends() == ends, "nothing appended since")
        want = tokens(t, t.env.path("late"))
        check(tokens(t, w.db) == want, "the writer's tokens differ")
        check(tokens(t, t.env.path("r-db")) == want, "the replica's differ")
        # A plain revoke is positional for a rebuild too.
        d = t.ok("rebuild", db=w.db, reader=True).json["data"]
        check(d == late, f"rebuilt {d} != {late}")
        # Every token the writer answered 201 for before the revoke's
        # position is there; answers.count(201) may also count records
        # signed after it (quarantined: the writer then said 503).
        check(len(want) <= answers.count(201) + answers.count(503),
              f"{len(want)} {answers.count(201)}")
    finally:
        for s_ in (w, r):
            if s_ is not None:
                s_.stop(check_exit=False)
        t.close()


if __name__ == "__main__":
    main([test_signed_writes_apply_alike_on_every_replica,
          test_a_writer_key_outside_the_keyring_appends_nothing,
          test_forgeries_are_quarantined_and_the_next_genuine_record_applies,
          test_garbage_under_a_writers_header_does_not_hold_its_record,
          test_unsigned_records_are_quarantined,
          test_a_lower_keyring_version_is_ignored,
          test_a_replica_fails_closed_when_heartbeats_stop,
          test_destinations_are_signed_and_judged,
          test_tail_from_mid_log_anchors_on_a_checkpoint,
          test_a_revoked_key_is_refused_by_running_replicas,
          test_a_revoke_while_the_key_writes_is_judged_alike_everywhere,
          test_a_schema_version_enabled_for_newer_readers_fails_this_one_closed])
