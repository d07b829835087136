"""Invalid input of every kind gets a clear error and appends nothing."""
from harness import CTKN, Env, check, main, run

GOOD_ID = "ctkn_01ghbkd0frb9k95cnhwd1bxpvk"


def expect(env, want_rc, code, field, *args):
    r = env.ctkn(*args)
    check(r.rc == want_rc, f"{args}: want exit {want_rc}: {r}")
    check(r.out == "", f"{args}: printed on stdout: {r}")
    e = r.error
    check(e["code"] == code, f"{args}: want {code}: {r}")
    if field:
        check(e["errors"][0]["field"] == field, f"{args}: field: {r}")
    check(e["detail"], f"{args}: no detail: {r}")


def test_bad_input_appends_nothing():
    env = Env(name="bad")
    try:
        tid = env.ok("create", "--name", "victim").json["data"]["id"]
        before = env.end_offsets()
        inval = [
            ("name", "create", "--name", ""),
            ("name", "create", "--name", "x" * 151),
            ("name", "create", "--name", "é" * 151),
            ("name", "create", "--name", "tab\there"),
            ("name", "create", "--name", "bell\x07"),
            ("description", "create", "--name", "ok",
             "--description", "d" * 501),
            ("description", "create", "--name", "ok", "--description", ""),
            ("idempotency_key", "create", "--name", "ok",
             "--idempotency-key", "has space"),
            ("id", "update", "ctkn_NOPE", "--name", "x"),
            ("id", "revoke", "not-an-id"),
            ("status", "update", tid, "--status", "deleted"),
            ("environment", "create", "--name", "ok",
             "--environment", "production"),
            ("per_page", "list", "--per-page", "0"),
            ("order_by", "list", "--order-by", "name"),
            ("status", "list", "--status", "active,gone"),
            ("after", "list", "--after", "ctkn_x"),
            ("token", "verify", "live_short"),
            ("log_level", "create", "--name", "ok", "--log-level", "loud"),
        ]
        for field, *args in inval:
            expect(env, 1, "invalid_field", field, *args)
        expect(env, 1, "bad_request", None, "update", tid)
        expect(env, 1, "not_found", None, "revoke", GOOD_ID)
        expect(env, 1, "not_found", None, "get", GOOD_ID)
        expect(env, 1, "not_found", None, "verify",
               "test_000000000000000000000000000")
        usage = [
            ("create", "--name"),
            ("create", "--nmae", "x"),
            ("create",),
            ("bogus",),
            ("list", "--per-page", "abc"),
            ("update", tid, "--description", "a", "--no-description"),
            ("create", "--name", "x", "-X", "acks=1"),
            ("create", "--name", "x", "-X", "enable.idempotence=false"),
            ("create", "--name", "x", "-X", "partitioner=random"),
            ("create", "--name", "x", "-X", "no-equals-sign"),
            ("create", "--name", "x", "-X", "not.a.property=1"),
            ("create", "--name", "x", "--timeout", "soon"),
            ("get",),
            ("get", tid, "extra"),
        ]
        for args in usage:
            expect(env, 2, "bad_request", None, *args)
        check(env.end_offsets() == before, "invalid input appended")
        # And nothing was lost: the victim is intact.
        got = env.ok("get", tid).json["data"]
        check(got["name"] == "victim" and got["status"] == "active", got)
    finally:
        env.close()


def test_invalid_utf8_argument_is_rejected():
    env = Env(name="utf8")
    try:
        before = env.end_offsets()
        # Bytes that are not UTF-8, passed straight through argv.
        import subprocess
        p = subprocess.run([CTKN, "create", "--name", b"bad\xff\xfe",
                            "--topic", env.topic, "--db", env.db,
                            "--brokers", __import__("harness").BROKERS],
                           capture_output=True, timeout=60)
        check(p.returncode == 1, p)
        check(b'"field":"name"' in p.stderr and b"UTF-8" in p.stderr, p)
        check(env.end_offsets() == before, "invalid UTF-8 appended")
    finally:
        env.close()


def test_environment_is_bound_to_the_projection():
    env = Env(name="envbind")
    try:
        env.ok("create", "--name", "sandbox one")
        r = env.ctkn("create", "--name", "live one", "--environment", "live")
        check(r.rc == 1 and r.error["code"] == "conflict", r)
        check("sandbox" in r.error["detail"], r)
    finally:
        env.close()


def test_status_never_creates_the_projection():
    """A read never creates --db: status on a missing one says so, as get
    does, and leaves nothing behind."""
    import os
    env = Env(name="status")
    try:
        env.ok("create", "--name", "one")
        missing = env.path("missing")
        for cmd in (["status"], ["get", GOOD_ID]):
            r = env.ctkn(*cmd, db=missing)
            check(r.rc == 3 and "run ctkn project" in r.error["detail"],
                  f"{cmd}: {r}")
            check(not os.path.exists(missing), f"{cmd} created {missing}")
        r = env.ok("status")
        check(r.json["data"], r)
    finally:
        env.close()


def test_help_and_version():
    r = run([CTKN, "help"])
    check(r.rc == 0 and "usage: ctkn" in r.out, r)
    r = run([CTKN, "version"])
    check(r.rc == 0 and r.json["data"]["schema_version"] == 2, r)


if __name__ == "__main__":
    main([test_bad_input_appends_nothing,
          test_invalid_utf8_argument_is_rejected,
          test_environment_is_bound_to_the_projection,
          test_status_never_creates_the_projection,
          test_help_and_version])
