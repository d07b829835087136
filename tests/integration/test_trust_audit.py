"""Trust offline, on the real broker: `ctkn audit verify --trust-root`
proves an exported log without trusting the broker, and fails, naming the
partition, offset and rule, once an attacker with Write on the topic
(tests/integration/rawcopy.c) has appended a replayed or edited record.
"""
import json

from harness import BROKERS, CTKN, check, main, run
from test_trust import Trusted, copy, create


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
        check(r.json["data"]["records"] == 3 * 3, f"{r.json}")
        # The settings archive proves itself: its keyring is the root's.
        r = audit(t, settings)
        check(r.rc == 0 and r.json["data"]["trust"]["root_records"] == 1,
              f"{r}")
        # Without the keyring the events cannot be judged.
        r = audit(t, events)
        check(r.rc == 1 and r.error["errors"][0]["field"] == "keyring", f"{r}")

        # An attacker appends the create again, and an edited copy.
        replay = copy(t, p, off)
        edited = copy(t, p, off, "set:ctkn-event-type=client_token.revoked")
        forged = export(t, "f.arc")
        # The archive's own chain is whole: only trust sees the forgery.
        plain = run([CTKN, "audit", "verify", forged])
        check(plain.rc == 0, f"{plain}")
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


if __name__ == "__main__":
    main([test_audit_verify_proves_the_log_and_names_a_forgery])
