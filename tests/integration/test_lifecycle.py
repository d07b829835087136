"""The full lifecycle of a token through the real broker."""
import re

from harness import BROKERS, CTKN, Env, check, main

ID_RE = re.compile(r"^ctkn_[0-9a-z]{26}$")
TOKEN_RE = re.compile(r"^test_[a-zA-Z0-9]{27}$")


def test_lifecycle():
    env = Env(name="life")
    try:
        r = env.ok("create", "--name", "Pricing page",
                   "--description", "Opens checkout")
        doc = r.json
        tok = doc["data"]
        check(list(doc) == ["data", "meta"], doc)
        check(ID_RE.match(tok["id"]), tok)
        check(TOKEN_RE.match(tok["token"]), tok)
        check(list(tok) == ["id", "token", "name", "description", "status",
                            "created_at", "updated_at", "revoked_at"], tok)
        check(tok["status"] == "active" and tok["revoked_at"] is None, tok)
        check(tok["created_at"] == tok["updated_at"], tok)
        check(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$",
                       tok["created_at"]), tok)
        tid = tok["id"]

        got = env.ok("get", tid).json["data"]
        check(got == tok, (got, tok))

        v = env.ctkn("verify", tok["token"])
        check(v.rc == 0, v)
        check(v.json["data"] == {"id": tid, "token": tok["token"],
                                 "status": "active",
                                 "environment": "sandbox"}, v.json)

        upd = env.ok("update", tid, "--name", "Pricing v2").json["data"]
        check(upd["name"] == "Pricing v2", upd)
        check(upd["description"] == "Opens checkout", upd)
        check(upd["updated_at"] > tok["updated_at"], upd)

        upd = env.ok("update", tid, "--no-description").json["data"]
        check(upd["description"] is None, upd)

        # An update that changes nothing appends nothing.
        before = env.end_offsets()
        same = env.ok("update", tid, "--name", "Pricing v2").json["data"]
        check(same == upd, (same, upd))
        check(env.end_offsets() == before, "no-op update appended")

        lst = env.ok("list").json
        check([t["id"] for t in lst["data"]] == [tid], lst)
        check(lst["meta"]["pagination"]["has_more"] is False, lst)

        rev = env.ok("revoke", tid).json["data"]
        check(rev["status"] == "revoked", rev)
        check(rev["revoked_at"] == rev["updated_at"], rev)

        v = env.ctkn("verify", tok["token"])
        check(v.rc == 1, f"verify of a revoked token must exit 1: {v}")
        check(v.json["data"]["status"] == "revoked", v)

        # Revoking again returns it unchanged and appends nothing.
        before = env.end_offsets()
        again = env.ok("revoke", tid).json["data"]
        check(again == rev, (again, rev))
        check(env.end_offsets() == before, "second revoke appended")

        # Any other change to a revoked token is a conflict.
        c = env.ctkn("update", tid, "--status", "active")
        check(c.rc == 1 and c.error["code"] == "conflict", c)
        c = env.ctkn("update", tid, "--name", "zombie")
        check(c.rc == 1 and c.error["code"] == "conflict", c)
        check(env.end_offsets() == before, "conflicting update appended")

        # Default list shows active only; revoked on request.
        check(env.ok("list").json["data"] == [], "revoked listed as active")
        lst = env.ok("list", "--status", "revoked").json["data"]
        check([t["id"] for t in lst] == [tid], lst)

        hist = env.ok("history", tid).lines
        check([h["event_type"] for h in hist] ==
              ["client_token.created", "client_token.updated",
               "client_token.updated", "client_token.revoked"], hist)
        check(hist[-1]["data"] == rev, hist[-1])
        check(all(list(h) == ["event_id", "event_type", "occurred_at",
                              "notification_id", "data"] for h in hist), hist)
        check(all(h["occurred_at"] == h["data"]["updated_at"] for h in hist),
              hist)

        # A fresh projection of the same log has the same digest.
        check(env.digest() == env.fresh_digest(), "digest differs")
    finally:
        env.close()


def test_idempotency_key():
    env = Env(name="idem")
    try:
        a = env.ok("create", "--name", "Checkout", "--idempotency-key",
                   "order-42").json["data"]
        before = env.end_offsets()
        b = env.ok("create", "--name", "Checkout", "--idempotency-key",
                   "order-42").json["data"]
        check(a == b, (a, b))
        check(env.end_offsets() == before, "retry appended")
        # Another replica that never saw the first create agrees.
        other = env.path("other")
        c = env.ok("create", "--name", "Checkout", "--idempotency-key",
                   "order-42", db=other).json["data"]
        check(c == a, (c, a))
        d = env.ctkn("create", "--name", "Other", "--idempotency-key",
                     "order-42")
        check(d.rc == 1 and d.error["code"] == "conflict", d)
        check(env.end_offsets() == before, "conflicting retry appended")
    finally:
        env.close()


def test_list_pagination():
    env = Env(name="page")
    try:
        ids = [env.ok("create", "--name", f"t{i}").json["data"]["id"]
               for i in range(7)]
        seen, after = [], None
        while True:
            args = ["list", "--per-page", "3", "--order-by", "id[ASC]"]
            if after:
                args += ["--after", after]
            page = env.ok(*args).json
            seen += [t["id"] for t in page["data"]]
            pg = page["meta"]["pagination"]
            check(pg["per_page"] == 3 and pg["estimated_total"] == 7, pg)
            # Paddle's next: always there, after this page's last ID.
            check("after=" + seen[-1] in pg["next"], pg)
            if not pg["has_more"]:
                break
            after = seen[-1]
        check(seen == sorted(ids), (seen, ids))
        desc = env.ok("list", "--per-page", "500").json
        check([t["id"] for t in desc["data"]] == sorted(ids, reverse=True),
              desc)
        check(desc["meta"]["pagination"]["per_page"] == 200, desc)
    finally:
        env.close()


def test_create_batch_mode():
    env = Env(name="batch")
    try:
        import json
        lines = []
        for i in range(300):
            if i % 50 == 7:
                lines.append('{"name": ""}')          # invalid_field
            elif i % 50 == 8:
                lines.append("{not json")              # bad_request
            else:
                lines.append(json.dumps({"name": f"bulk {i}",
                                         "description": f"line {i}"}))
        before = sum(env.end_offsets())
        r = env.ctkn("create", "--batch", input="\n".join(lines) + "\n")
        check(r.rc == 1, f"a batch with rejected lines exits 1: {r.rc}")
        out = r.lines
        check(len(out) == len(lines), (len(out), len(lines)))
        ok = 0
        for i, doc in enumerate(out):
            if i % 50 == 7:
                check(doc["error"]["code"] == "invalid_field", doc)
            elif i % 50 == 8:
                check(doc["error"]["code"] == "bad_request", doc)
            else:
                check(doc["data"]["name"] == f"bulk {i}", (i, doc))
                ok += 1
        # Signed, the log holds checkpoints too: a fresh projection of it
        # applies exactly the accepted lines, and nothing else is there.
        check(sum(env.end_offsets()) > before, "the batch appended nothing")
        st = env.ok("project", db=env.path("count")).json["data"]
        check(st["applied"] == ok and st["rejected"] == 0 and
              st["quarantined"] == 0,
              f"the batch appended a different number of events: {st}")
        ids = {d["data"]["id"] for d in out if "data" in d}
        check(len(ids) == ok, "duplicate IDs in a batch")
        lst = env.ok("list", "--per-page", "200").json
        check(lst["meta"]["pagination"]["estimated_total"] == ok, lst)
        env.ok("project")  # the batch's closing checkpoints, after its reads
        d, f = env.digest(), env.fresh_digest()
        check(d == f, f"digest differs: {d} {f}")
        r = env.ctkn("create", "--batch", "--name", "x")
        check(r.rc == 2, r)
    finally:
        env.close()


def test_create_batch_answers_each_line_as_it_comes():
    """A program that writes a line to `ctkn create --batch` and waits for
    its answer gets it while its input is still open, even with half of
    the next line already sent; the end of input ends the process."""
    import json
    import select
    import subprocess
    import time as _t

    env = Env(name="batchlive")
    p = None
    try:
        p = subprocess.Popen([CTKN, "create", "--batch", "--topic", env.topic,
                              "--brokers", BROKERS, "--db", env.db],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, bufsize=0)

        def answer():
            ready, _, _ = select.select([p.stdout], [], [], 30)
            check(ready, "no answer within 30 s while the input is open")
            return json.loads(p.stdout.readline())

        for i in range(3):
            p.stdin.write(json.dumps({"name": f"live {i}"}).encode() + b"\n")
            p.stdin.flush()
            doc = answer()
            check(doc.get("data", {}).get("name") == f"live {i}", doc)
        # A line and half of the next: the first is answered at once.
        p.stdin.write(b'{"name": "whole"}\n{"name": "ha')
        p.stdin.flush()
        doc = answer()
        check(doc.get("data", {}).get("name") == "whole", doc)
        _t.sleep(0.2)
        p.stdin.write(b'lf"}\n')
        p.stdin.flush()
        doc = answer()
        check(doc.get("data", {}).get("name") == "half", doc)
        p.stdin.close()
        rc = p.wait(timeout=30)
        rest = p.stdout.read()
        check(rc == 0 and rest == b"", f"exit {rc}, after the end: {rest!r}")
        lst = env.ok("list", "--per-page", "50").json
        check(lst["meta"]["pagination"]["estimated_total"] == 5, lst)
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        env.close()


def test_replay_as_of_instants():
    import datetime
    import time as _t

    def at(ts, delta_us=0):
        d = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
        d += datetime.timedelta(microseconds=delta_us)
        return d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def mid(a, b):
        da = datetime.datetime.strptime(a, "%Y-%m-%dT%H:%M:%S.%fZ")
        db = datetime.datetime.strptime(b, "%Y-%m-%dT%H:%M:%S.%fZ")
        return (da + (db - da) / 2).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    env = Env(name="replay", partitions=2)
    try:
        t = env.ok("create", "--name", "first").json["data"]
        _t.sleep(0.05)
        u = env.ok("update", t["id"], "--name", "second").json["data"]
        _t.sleep(0.05)
        r = env.ok("revoke", t["id"]).json["data"]
        _t.sleep(0.05)
        other = env.ok("create", "--name", "later").json["data"]

        def replay(name, when):
            db = env.path(name)
            env.ok("replay", "--as-of", when, db=db)
            return db

        db = replay("before", at(t["created_at"], -5000))
        g = env.ctkn("get", t["id"], db=db)
        check(g.rc == 1 and g.error["code"] == "not_found", g)

        db = replay("created", mid(t["created_at"], u["updated_at"]))
        g = env.ok("get", t["id"], db=db).json["data"]
        check(g == t, (g, t))
        check(env.ctkn("verify", t["token"], db=db).rc == 0, "not active")

        db = replay("updated", mid(u["updated_at"], r["updated_at"]))
        g = env.ok("get", t["id"], db=db).json["data"]
        check(g == u, (g, u))

        db = replay("revoked", mid(r["updated_at"], other["created_at"]))
        g = env.ok("get", t["id"], db=db).json["data"]
        check(g == r, (g, r))
        check(env.ctkn("get", other["id"], db=db).rc == 1,
              "a later token leaked into the replay")
        check(env.ctkn("verify", t["token"], db=db).rc == 1, "still active")

        # Frozen: nothing advances it, and a replay needs a new --db.
        x = env.ctkn("project", db=db)
        check(x.rc == 1 and x.error["code"] == "conflict", x)
        check("frozen" in x.error["detail"], x)
        x = env.ctkn("create", "--name", "no", db=db)
        check(x.rc == 1 and "frozen" in x.error["detail"], x)
        x = env.ctkn("replay", "--as-of", r["updated_at"], db=db)
        check(x.rc == 1 and x.error["code"] == "conflict", x)
        x = env.ctkn("replay", "--as-of", "yesterday", db=env.path("bad"))
        check(x.rc == 1 and x.error["errors"][0]["field"] == "as_of", x)

        # After everything: the same digest as the live projection's
        # content over the same prefix.
        # (Past the end: now, after every record's checkpoint too.)
        now = datetime.datetime.now(datetime.timezone.utc)
        db = replay("all", now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
        check(env.digest(db)["sha256"] == env.fresh_digest()["sha256"],
              "a replay past the end differs from a full projection")
    finally:
        env.close()


if __name__ == "__main__":
    main([test_lifecycle, test_idempotency_key, test_list_pagination,
          test_create_batch_mode,
          test_create_batch_answers_each_line_as_it_comes,
          test_replay_as_of_instants])
