"""Trust offline and for old logs, on the real broker:

* `ctkn audit verify --trust-root` proves an exported log without trusting
  the broker, and fails, naming the partition, offset and rule, once an
  attacker with Write on the topic (tests/integration/rawcopy.c) has
  appended a replayed or edited record;
* `ctkn trust adopt` lets signed readers apply a topic's unsigned prefix,
  and only that prefix: an edited copy of one of its records appended
  afterwards is quarantined;
* `ctkn rebuild --trust-root` judges the log as a fresh follow does, by
  the keyring as it stands: what a key revoked since wrote is gone.
"""
import json

from harness import BROKERS, CTKN, check, main, run
from test_trust import Trusted, copy, create, status, unsigned_copy


def export(t, name, settings=False):
    """An archive of the topic, or of its settings topic."""
    path = t.env.path(name)
    topic = t.env.topic + ("_settings" if settings else "")
    r = run([CTKN, "export", "--out", path, "--topic", topic,
             "--brokers", BROKERS])
    check(r.rc == 0, f"export {topic}: {r}")
    return path


def audit(t, arc, *args):
    return run([CTKN, "audit", "verify", arc, "--trust-root", t.pub, *args])


def test_audit_verify_proves_the_log_and_names_a_forgery():
    t = Trusted("audit")
    try:
        tid, p, off = create(t, "audited")
        create(t, "other")
        t.ok("revoke", tid)
        events, settings = export(t, "a.arc"), export(t, "s.arc", True)
        r = audit(t, events, "--settings-archive", settings)
        check(r.rc == 0, f"{r}")
        tr = r.json["data"]["trust"]
        check(tr["proven"] == 3 and tr["failed"] == 0 and
              tr["keyring_version"] == 1 and tr["log_id"] == t.log_id, f"{tr}")
        # 2 records per command (its event and the checkpoint closing
        # its process's instance), and the keyring placed on each partition
        check(r.json["data"]["records"] == 3 * 2 + 3, f"{r.json}")
        # The settings archive proves itself: its keyring is the root's.
        r = audit(t, settings)
        check(r.rc == 0 and r.json["data"]["trust"]["root_records"] == 1,
              f"{r}")
        # Without the settings archive: the keyring placed on every event
        # partition is in the events archive itself (a log from before
        # positional keyrings needs --settings-archive: test_audit.c).
        r = audit(t, events)
        check(r.rc == 0 and
              r.json["data"]["trust"]["keyring_version"] == 1, f"{r}")

        # An attacker appends the create again, and an edited copy.
        replay = copy(t, p, off)
        edited = copy(t, p, off, "set:ctkn-event-type=client_token.revoked")
        forged = export(t, "f.arc")
        r = audit(t, forged, "--settings-archive", settings)
        check(r.rc == 1, f"{r}")
        e = r.error
        check(e["code"] == "bad_request" and
              e["errors"][0]["field"] == "records" and
              f"partition {p} offset {replay[1]}: not proven" in e["detail"],
              f"{e}")
        tr = json.loads(r.out)["data"]["trust"]
        where = {(f["partition"], f["offset"]) for f in tr["failures"]}
        check(tr["failed"] == 2 and where == {replay, edited} and
              tr["proven"] == 3, f"{tr}")
    finally:
        t.close()


def test_adopt_lets_signed_readers_apply_the_unsigned_prefix():
    t = Trusted("adopt", partitions=2)
    try:
        # Written before signing, by a build that did not sign: the events
        # of another log, copied without their signing headers.
        src = Trusted("adopt-old", partitions=2)
        try:
            old, where = [], {}
            for i in range(4):
                tid, p, off = create(src, f"old {i}")
                old.append(src.ok("get", tid).json["data"])
                where[tid] = unsigned_copy(src.env.topic, p, off, t.env.topic)
            before = src.ends()
            src.ok("revoke", old[0]["id"])
            p = [q for q in (0, 1) if src.ends()[q] != before[q]][0]
            unsigned_copy(src.env.topic, p, before[p], t.env.topic)
        finally:
            src.close()
        # A signed reader refuses all of it.
        stats, _ = t.replica("before")
        check(stats["applied"] == 0 and stats["quarantined"] == 5, f"{stats}")
        # The root vouches for the prefix.
        ends = t.ends()
        a = t.ok("trust", "adopt", "--root-key", t.root).json["data"]
        check(a["log_id"] == t.log_id and
              [x["end_offset"] for x in a["partitions"]] == ends, f"{a}")
        signed = create(t, "signed after")[0]
        stats, digest = t.replica("after")
        check(stats["applied"] == 6 and stats["quarantined"] == 0, f"{stats}")
        db = t.env.path("after")
        check(status(t, old[0]["token"], db) == "revoked", "the old revoke")
        check(status(t, old[1]["token"], db) == "active", "an old create")
        check(t.ok("get", signed, db=db, reader=True).json["data"]["id"] ==
              signed, "the signed create")
        # An attacker replays an old create edited into a revoke: it lands
        # past the adopted prefix, unsigned, and is quarantined.
        p, off = where[old[1]["id"]]
        forged = copy(t, p, off, "set:ctkn-event-type=client_token.revoked")
        check(forged[1] >= ends[p], f"{forged} inside the prefix {ends}")
        for name in ("after", "fresh"):
            db = t.env.path(name)
            stats = t.ok("project", db=db, reader=True).json["data"]
            q = {(x["partition"], x["offset"]): x["reason"]
                 for x in t.quarantined(db)}
            check(forged in q and "unsigned" in q[forged], f"{name}: {q}")
            check(status(t, old[1]["token"], db) == "active",
                  f"{name}: the forged revoke applied")
        check(t.env.digest(t.env.path("after")) ==
              t.env.digest(t.env.path("fresh")), "replicas agree")
        # `tail --trust-root` from the beginning checks the adoption too:
        # the old events and the signed one, never the forged revoke.
        r = t.ok("tail", "--from-beginning", "--exit-at-end", reader=True)
        events = [json.loads(x) for x in r.out.splitlines()]
        check(len(events) == 6 and
              sum(e["event_type"] == "client_token.revoked" and
                  e["data"]["id"] == old[0]["id"] for e in events) == 1 and
              not any(e["event_type"] == "client_token.revoked" and
                      e["data"]["id"] == old[1]["id"] for e in events),
              f"{r.out}")
        # An auditor applies the same rule offline: the prefix is adopted,
        # the signed create proven, the forged copy fails.
        events, settings = export(t, "a.arc"), export(t, "s.arc", True)
        r = audit(t, events, "--settings-archive", settings)
        check(r.rc == 1, f"{r}")
        tr = json.loads(r.out)["data"]["trust"]
        check(tr["adopted"] == 5 and tr["proven"] == 1 and tr["failed"] == 1
              and (tr["failures"][0]["partition"],
                   tr["failures"][0]["offset"]) == forged and
              "unsigned" in tr["failures"][0]["reason"], f"{tr}")
        # The adoption is kept with the projection: a restart that reads
        # the prefix again does not need the settings topic's word again.
        log = t.ok("project", db=t.env.path("fresh"), reader=True).err
        check("does not match" not in log, log)
    finally:
        t.close()


def test_rebuild_judges_by_the_keyring_as_it_stands():
    t = Trusted("rebuild", partitions=2)
    try:
        ids = [create(t, f"by the old key {i}")[0] for i in range(2)]
        raw = t.env.raw(0, ids[0], b"\x0a\x00", "client_token.revoked", "1")
        db = t.env.path("live")
        stats = t.ok("project", db=db, reader=True).json["data"]
        check(stats["applied"] == 2 and stats["quarantined"] == 1, f"{stats}")
        # The key leaks: revoked retroactively, then a new key writes on.
        # (A plain revoke counts from its position on every partition, for
        # rebuilds too: test_trust.py.)
        key_id = t.ok("trust", "keyring").json["data"]["keys"][0]["key_id"]
        t.env.ok("trust", "key", "revoke", key_id, "--root-key", t.root,
                 "--retroactive")
        new = t.env.path("new.key")
        t.env.ok("trust", "key", "add", "--root-key", t.root, "--name", "n",
                 "--scope", "client_token.*", "--out", new)
        t.vars["CTKN_WRITER_KEY"] = new
        kept = create(t, "by the new key")[0]
        t.ok("project", db=db, reader=True)
        check(t.env.digest(db)["tokens"] == 3, "revoking is not retroactive")
        # Rebuilt with the trust root: the old key's records are refused,
        # the unsigned one stays quarantined, the new key's applies.
        r = t.ok("rebuild", db=db, reader=True)
        d = r.json["data"]
        check(d["tokens"] == 1, f"{d}")
        check(t.ok("get", kept, db=db, reader=True).rc == 0, "the new token")
        q = {(x["partition"], x["offset"]): x["reason"]
             for x in t.quarantined(db)}
        check(q.get(raw, "").startswith("unsigned") and
              sum("revoked" in v for v in q.values()) == 2, f"{q}")
        _, fresh = t.replica("fresh")
        check(d == fresh, f"rebuilt {d} != a fresh replica's {fresh}")
    finally:
        t.close()


if __name__ == "__main__":
    main([test_audit_verify_proves_the_log_and_names_a_forgery,
          test_adopt_lets_signed_readers_apply_the_unsigned_prefix,
          test_rebuild_judges_by_the_keyring_as_it_stands])
