#!/usr/bin/env python3
"""The audit archive: ctkn export, audit verify, replay --from-file and
import, against the real broker."""
import base64
import json
import os
import subprocess

from harness import BROKERS, CTKN, Env, check, main, run

RAWCOPY = os.environ["CTKN_RAWCOPY"]


def populate(env):
    """Creates, updates, a revoke, an idempotent create, a rejected event
    and a poison record: every table of the projection has something."""
    ids = [env.ok("create", "--name", f"audit {i}",
                  "--description", "d").json["data"]["id"] for i in range(8)]
    env.ok("update", ids[1], "--name", "renamed")
    env.ok("revoke", ids[2])
    env.ok("create", "--name", "idem", "--idempotency-key", "k-1")
    env.raw(0, "poison", b"\x01\x02not protobuf", "client_token.created", "1")
    env.ok("create", "--name", "after the poison")
    return ids


ROOTLESS = {"CTKN_TRUST_ROOT": "", "CTKN_WRITER_KEY": ""}


def settings_topic_io(verb, path, topic):
    """export or import the settings topic: it holds the keyring and the
    adoptions readers judge by."""
    flag = "--out" if verb == "export" else "--from-file"
    r = run([CTKN, verb, flag, path, "--topic", topic + "_settings",
             "--brokers", BROKERS])
    check(r.rc == 0, f"{verb} {topic}_settings: {r}")
    return r.json["data"]


def test_export_verify_replay_and_import_keep_the_digest():
    """With trust on (signed records, their checkpoints, the keyring placed
    on every partition): an export replays to the live digest, judged by
    the trust root as `ctkn project` judges the topic, and an import (with
    the settings topic's) projects to it too."""
    env = Env(name="archive")
    try:
        ids = populate(env)
        # An unsigned record after signing began: quarantined live, and so
        # in a replay of the export (issue 13: trust nothing on the wire).
        unsigned = env.raw(1, "unsigned", b"\x01\x02",
                           "client_token.created", "1", signed=False)
        # A genuine signed record appended again verbatim (rawcopy: what
        # Write on the topic allows): a replay, quarantined alike.
        before = env.end_offsets()
        env.ok("update", ids[3], "--name", "copied")
        after = env.end_offsets()
        p = next(i for i in range(len(after)) if after[i] != before[i])
        cp = subprocess.run([RAWCOPY, BROKERS, env.topic, str(p),
                             str(before[p])], capture_output=True, text=True,
                            timeout=60)
        check(cp.returncode == 0, f"rawcopy failed: {cp.stderr}")
        want = env.fresh_digest()
        check(want["tokens"] == 10, f"10 tokens: {want}")
        total = sum(env.end_offsets())
        arc, sarc = env.path("log.arc"), env.path("settings.arc")
        exp = env.ok("export", "--out", arc).json["data"]
        check(exp["records"] == total and exp["topic"] == env.topic,
              f"{exp} (the topic holds {total})")
        check(sum(p["end"] - p["start"] for p in exp["partitions"]) == total,
              "the header's offsets cover every record")
        settings_topic_io("export", sarc, env.topic)
        # There is no unsigned audit: the root is what it proves against.
        plain = run([CTKN, "audit", "verify", arc], env=ROOTLESS)
        check(plain.rc == 2 and "--trust-root" in plain.err, f"{plain}")
        # Audit prints what export printed, and names the two forgeries,
        # and only them.
        r = run([CTKN, "audit", "verify", arc, "--trust-root", env.pub,
                 "--settings-archive", sarc])
        d = json.loads(r.out)["data"] if r.out else {}
        tr = d.get("trust", {})
        check({k: v for k, v in d.items() if k != "trust"} == exp,
              f"verify prints what export printed: {d} {exp}")
        check(r.rc == 1 and tr.get("failed") == 2 and
              {(f["partition"], f["offset"]) for f in tr["failures"]} ==
              {unsigned, (p, after[p])}, f"{r}")
        # An export is a function of the log: a second one is identical.
        again = env.ok("export", "--out", env.path("again.arc")).json["data"]
        check(again["sha256"] == exp["sha256"], "deterministic")
        with open(arc, "rb") as a, open(env.path("again.arc"), "rb") as b:
            check(a.read() == b.read(), "byte-identical")

        # A projection of the archive has the topic's digest, quarantined
        # poison and forgery and all, with no broker needed: by the keyring
        # placed in the export, or by the settings archive's.
        for name, extra in (("from-file", []),
                            ("from-files", ["--settings-archive", sarc])):
            r = env.ok("replay", "--from-file", arc, *extra,
                       db=env.path(name), brokers="127.0.0.1:1")
            check(r.json["data"] == want, f"replay digest {r.json} != {want}")
        q = env.ok("quarantine", db=env.path("from-file")).lines
        copied = base64.b64encode(ids[3].encode()).decode()
        keys = sorted(x["key_base64"] for x in q)
        check(keys == sorted(["cG9pc29u", "dW5zaWduZWQ=", copied]), f"{q}")
        why = {x["key_base64"]: x["reason"] for x in q}
        check("unsigned" in why["dW5zaWduZWQ="] and
              "not proven" in why[copied], f"{why}")
        check(env.ok("get", ids[3], db=env.path("from-file"))
              .json["data"]["name"] == "copied", "the genuine update holds")
        r = env.ctkn("project", db=env.path("from-file"))
        check(r.rc == 1 and "frozen" in r.error["detail"], f"frozen: {r}")
        # --settings-archive judges: only with a root and an archive.
        r = env.ctkn("replay", "--from-file", arc, "--settings-archive", sarc,
                     db=env.path("x"), env=ROOTLESS)
        check(r.rc == 2, f"--settings-archive without a root: {r}")

        # Disaster recovery: the archive into a new topic, and the settings
        # archive into its settings topic (signatures cover the log ID, not
        # the topic name): same digest under the same root.
        copy = Env(name="archive-copy", partitions=1)
        try:
            copy.topic += "-dr"  # a topic that does not exist yet
            settings_topic_io("import", sarc, copy.topic)
            r = copy.ok("import", "--from-file", arc)
            imp = r.json["data"]
            check(imp["records"] == total and imp["topic"] == copy.topic,
                  f"{imp}")
            check("holds no records" not in r.err, f"a spurious warning: {r}")
            got = copy.fresh_digest()
            check(got == want, f"imported digest {got} != {want}")
            # The records kept their timestamps and headers: the copy's
            # own export has the same records, so the same offsets and
            # count; only the topic name in the header differs.
            cexp = copy.ok("export", "--out", copy.path("c.arc")).json["data"]
            check(cexp["partitions"] == exp["partitions"], f"{cexp}")
            t1 = env.ok("tail", "--from-beginning", "--exit-at-end").lines
            t2 = copy.ok("tail", "--from-beginning", "--exit-at-end").lines
            check(sorted(map(str, t1)) == sorted(map(str, t2)),
                  "the same events")
            # Without the settings topic, an import says what readers will
            # lack, and a reader refuses the log rather than quarantine it.
            bare = copy.topic + "-bare"
            r = run([CTKN, "import", "--from-file", arc, "--topic", bare,
                     "--brokers", BROKERS])
            check(r.rc == 0 and "holds no records" in r.err and
                  bare + "_settings" in r.err, f"no warning: {r}")
            r = run([CTKN, "project", "--topic", bare, "--brokers", BROKERS,
                     "--db", copy.path("bare-db"), "--trust-root", env.pub])
            check(r.rc == 3 and "no keyring signed by the trust root" in r.err,
                  f"{r}")
            # A second import finds every record there already (as a
            # resumed one finds those a cut-short import left) and
            # appends nothing.
            ends = copy.end_offsets()
            r = copy.ctkn("import", "--from-file", arc)
            check(r.rc == 0 and "import resumed" in r.err and
                  copy.end_offsets() == ends, f"{r}")
            # One into a topic that holds more than the archive is refused.
            copy.raw(0, "after", b"\x01", "client_token.created", "1",
                     signed=False)
            r = copy.ctkn("import", "--from-file", arc)
            check(r.rc == 1 and r.error["code"] == "conflict" and
                  "not empty" in r.error["detail"], f"{r}")
            # So is one into a topic of another partition count.
            other = Env(name="archive-other", partitions=2, trust=False)
            try:
                r = other.ctkn("import", "--from-file", arc)
                check(r.rc == 1 and "partitions" in r.error["detail"], f"{r}")
            finally:
                other.close()
        finally:
            copy.close()
    finally:
        env.close()


def test_a_tampered_archive_is_refused_everywhere():
    env = Env(name="archive", partitions=2)
    try:
        populate(env)
        arc = env.path("log.arc")
        env.ok("export", "--out", arc)
        data = open(arc, "rb").read()
        i = data.index(b"renamed")
        bad = env.path("bad.arc")
        with open(bad, "wb") as f:
            f.write(data[:i] + b"R" + data[i + 1:])
        r = env.ctkn("audit", "verify", bad)
        check(r.rc == 1 and "chain broken" in r.error["detail"], f"{r}")
        r = env.ctkn("replay", "--from-file", bad, db=env.path("bad-db"))
        check(r.rc == 1 and "chain broken" in r.error["detail"], f"{r}")
        check(not os.path.exists(env.path("bad-db")), "nothing is left")
        r = env.ctkn("import", "--from-file", bad,
                     env={"CTKN_TOPIC": env.topic + "-never"})
        check(r.rc == 1, f"import refuses it: {r}")
        cut = env.path("cut.arc")
        with open(cut, "wb") as f:
            f.write(data[:len(data) - 3])
        r = env.ctkn("audit", "verify", cut)
        check(r.rc == 1 and "truncated" in r.error["detail"], f"{r}")
        r = env.ctkn("audit", "verify", env.path("missing.arc"))
        check(r.rc == 3, f"a missing file is an i/o error: {r}")
        r = env.ctkn("audit", "check", arc)
        check(r.rc == 2, f"unknown audit command: {r}")
        r = env.ctkn("export", "--out", arc)
        check(r.rc == 1 and r.error["code"] == "conflict", f"{r}")
        r = env.ctkn("replay", "--from-file", arc, "--as-of",
                     "2020-01-01T00:00:00Z", db=env.path("x"))
        check(r.rc == 2, f"--from-file with --as-of: {r}")
    finally:
        env.close()


if __name__ == "__main__":
    main([test_export_verify_replay_and_import_keep_the_digest,
          test_a_tampered_archive_is_refused_everywhere])
