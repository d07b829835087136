"""API keys on the log (issue #14, parts 1 and 2) against the real broker:
three `ctkn serve` replicas with no key file, keys managed with `ctkn
apikey` through the settings topic.

* a key created on the CLI works on every replica;
* a revoked key is refused by all three within a bound (the time from
  `ctkn apikey revoke` returning to the third 403 is printed);
* a rotation's grace is honoured: the old secret works until it ends and
  is refused after, the new one works at once;
* an expired key is refused by every replica and reads as expired;
* last_used_at is rate-limited: with --key-used-interval 2, 10 s of
  steady traffic on 3 replicas appends 15-18 api_key.used records;
* `apikey import` moves a key file's key onto the log; it works on a
  replica without the file, and is refused once revoked.
"""
import datetime
import time

from harness import CTKN, Env, Server, check, kafka_tool, main, run

INTERVAL = 2  # --key-used-interval for the replicas, seconds
BOUND = 2.0   # seconds from `apikey revoke` returning to 403 everywhere

env = servers = None


def setup():
    global env, servers
    env = Env(partitions=2, name="keys")
    servers = [Server(env, name=f"r{i}", keys=(),
                      args=("--key-used-interval", str(INTERVAL)))
               for i in range(3)]


def create(*extra, name="fleet", perms="client_token.read"):
    r = env.ok("apikey", "create", "--name", name, "--permissions", perms,
               *extra)
    d = r.json["data"]
    check(d["key"].startswith("ctkn_sdbx_apikey_") and
          d["id"].startswith("apikey_") and d["key"][17:43] == d["id"][7:],
          f"the key carries its ID: {d}")
    return d


def status(srv, key):
    return srv.request("GET", "/client-tokens?per_page=1",
                       key=f"Bearer {key}").status


def answer(srv, method, path, key, bound=10):
    """srv's answer, asked again while it is a 503 (a replica whose
    settings follower is being reopened refuses keys on the log until it
    follows again: fail closed, retry)."""
    t0 = time.monotonic()
    while True:
        r = srv.request(method, path, key=key)
        if r.status != 503 or time.monotonic() - t0 > bound:
            return r
        time.sleep(0.1)


def until_all(key, want, bound):
    """Seconds until every replica answers want for key; fails past
    bound."""
    t0 = time.monotonic()
    pending = set(range(len(servers)))
    while pending:
        pending = {i for i in pending if status(servers[i], key) != want}
        if pending and time.monotonic() - t0 > bound:
            raise AssertionError(
                f"replicas {sorted(pending)} still not {want} after "
                f"{bound}s")
    return time.monotonic() - t0


def test_created_key_works_everywhere_and_revocation_reaches_all():
    k = create()
    until_all(k["key"], 200, 10)
    r = env.ok("apikey", "get", k["id"])
    check(r.json["data"]["status"] == "active" and
          r.json["data"]["permissions"] == ["client_token.read"] and
          "key" not in r.json["data"], r)
    # A key without the permission is forbidden, a mangled one unknown.
    resp = answer(servers[0], "GET", "/notification-settings",
                  f"Bearer {k['key']}")
    check(resp.status == 403 and resp.json["error"]["code"] == "forbidden",
          resp)
    bad = k["key"][:-1] + ("A" if k["key"][-1] != "A" else "B")
    resp = answer(servers[1], "GET", "/client-tokens", f"Bearer {bad}")
    check(resp.status == 403 and
          resp.json["error"]["code"] == "invalid_token", resp)
    ids = [x["id"] for x in env.ok("apikey", "list").json["data"]]
    check(k["id"] in ids, f"list holds the key: {ids}")
    env.ok("apikey", "revoke", k["id"])
    took = until_all(k["key"], 403, BOUND)
    print(f"     revocation reached 3 replicas in {took * 1000:.0f} ms")
    resp = answer(servers[2], "GET", "/client-tokens", f"Bearer {k['key']}")
    check(resp.json["error"]["code"] == "invalid_token", resp)
    check(env.ok("apikey", "get", k["id"]).json["data"]["status"] ==
          "revoked", "status revoked")


def test_rotation_grace_is_honoured():
    k = create(name="rotating")
    until_all(k["key"], 200, 10)
    r = env.ok("apikey", "rotate", k["id"], "--grace-period", "3")
    t0 = time.monotonic()
    new = r.json["data"]["key"]
    check(new != k["key"] and r.json["data"]["id"] == k["id"], r)
    until_all(new, 200, BOUND)
    # Inside the grace: both secrets work everywhere.
    check(time.monotonic() - t0 < 2.5, "the checks ran inside the grace")
    check(all(status(s, k["key"]) == 200 for s in servers),
          "the old secret works during the grace")
    time.sleep(max(0.0, 3.2 - (time.monotonic() - t0)))
    check(all(status(s, k["key"]) == 403 for s in servers),
          "the old secret is refused after the grace")
    check(all(status(s, new) == 200 for s in servers), "the new one works")
    # Out of range: refused before anything is appended.
    r = env.ctkn("apikey", "rotate", k["id"], "--grace-period", "86401")
    check(r.rc == 1 and r.error["code"] == "invalid_field" and
          "grace_period_seconds" in r.err, r)


def test_expired_key_is_refused_everywhere():
    at = (datetime.datetime.now(datetime.timezone.utc) +
          datetime.timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
    k = create("--expires-at", at, name="short")
    until_all(k["key"], 200, 2.5)
    until_all(k["key"], 403, 5)
    r = env.ok("apikey", "get", k["id"])
    check(r.json["data"]["status"] == "expired", r)
    r = env.ctkn("apikey", "create", "--name", "past", "--permissions",
                 "client_token.read", "--expires-at", "2020-01-01T00:00:00Z")
    check(r.rc == 1 and r.error["code"] == "invalid_field" and
          "expires_at" in r.err, r)


def used_records():
    out = kafka_tool("org.apache.kafka.tools.consumer.ConsoleConsumer",
                     "--topic", env.topic + "_settings", "--from-beginning",
                     "--property", "print.headers=true",
                     "--property", "print.value=false",
                     "--timeout-ms", "5000", timeout=120)
    return sum(1 for line in out.splitlines()
               if "ctkn-event-type:api_key.used" in line)


def test_last_used_is_rate_limited():
    k = create(name="busy")
    until_all(k["key"], 200, 10)
    time.sleep(INTERVAL + 0.5)  # the polls above started each replica's clock
    before = used_records()
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 10:
        check(status(servers[i % 3], k["key"]) == 200, "traffic")
        i += 1
        time.sleep(0.02)
    time.sleep(2)  # the last records' appends
    n = used_records() - before
    print(f"     {i} requests in 10 s on 3 replicas: {n} api_key.used "
          "records")
    check(15 <= n <= 18, f"{n} used records, want 15-18")
    last = env.ok("apikey", "get", k["id"]).json["data"]["last_used_at"]
    check(last is not None, "last_used_at is set")


def test_import_moves_a_key_file_onto_the_log():
    f = env.path("old-keys.jsonl")
    r = run([CTKN, "apikey", "create", "--file", f, "--name", "legacy",
             "--permissions", "client_token.read"])
    check(r.rc == 0, r)
    old = r.json["data"]["key"]
    check(status(servers[0], old) == 403, "not on the log yet")
    r = env.ok("apikey", "import", "--file", f)
    ids = [k["id"] for k in r.json["data"]]
    check(len(ids) == 1, r)
    until_all(old, 200, 10)
    r = env.ok("apikey", "import", "--file", f)  # again: the same key
    check([k["id"] for k in r.json["data"]] == ids, r)
    env.ok("apikey", "revoke", ids[0])
    until_all(old, 403, BOUND)


def test_on_a_trusted_log_scopes_and_the_schema_gate_hold():
    t = Env(partitions=1, name="keytrust", trust=False)
    srv = None
    try:
        root = t.path("root.key")
        t.ok("trust", "init", "--root-key", root)
        ops, used = t.path("ops.key"), t.path("used.key")
        t.ok("trust", "key", "add", "--root-key", root, "--name", "ops",
             "--scope", "api_key.*", "--out", ops)
        t.ok("trust", "key", "add", "--root-key", root, "--name", "replica",
             "--scope", "api_key.used", "--out", used)
        tokens = t.path("tokens.key")  # the replica's token writes, heartbeats
        t.ok("trust", "key", "add", "--root-key", root, "--name", "api",
             "--scope", "client_token.*", "--out", tokens)
        as_ops = {"CTKN_TRUST_ROOT": root + ".pub", "CTKN_WRITER_KEY": ops}
        args = ("apikey", "create", "--name", "signed", "--permissions",
                "client_token.read")
        # Schema version 2 is not enabled yet: nothing is appended.
        r = t.ctkn(*args, env=as_ops)
        check(r.rc != 0 and "schema version 2" in r.err, r)
        t.ok("trust", "schema", "enable", "2", "--root-key", root)
        # A key scoped api_key.used may not create keys.
        r = t.ctkn(*args, env={**as_ops, "CTKN_WRITER_KEY": used})
        check(r.rc != 0 and r.error.get("errors", [{}])[0].get("field") ==
              "writer_key" if "errors" in r.error else "writer_key" in r.err,
              r)
        k = t.ok(*args, env=as_ops).json["data"]
        srv = Server(t, name="trusted", keys=(),
                     args=("--trust-root", root + ".pub", "--writer-key",
                           tokens, "--usage-key", used,
                           "--key-used-interval", "1"))
        deadline = time.monotonic() + 10
        while status(srv, k["key"]) != 200:
            check(time.monotonic() < deadline, "the signed key never worked")
            time.sleep(0.05)
        # The replica's api_key.used record, signed by its scoped key,
        # applies: last_used_at shows on a reader that judges by the root.
        reader = {"CTKN_TRUST_ROOT": root + ".pub", "CTKN_WRITER_KEY": ""}
        deadline = time.monotonic() + 10
        while t.ok("apikey", "get", k["id"], env=reader).json["data"][
                "last_used_at"] is None:
            check(time.monotonic() < deadline, "last_used_at never set")
            time.sleep(0.2)
        t.ok("apikey", "revoke", k["id"], env=as_ops)
        deadline = time.monotonic() + BOUND
        while status(srv, k["key"]) != 403:
            check(time.monotonic() < deadline, "revocation not applied")
        check("quarantined" not in srv.output(), srv.output()[-2000:])
    finally:
        if srv is not None:
            srv.stop()
        t.close()


def test_http_routes_in_paddles_shapes():
    admin = create(name="admin", perms="api_key.write,client_token.read")
    reader = create(name="reader")
    until_all(admin["key"], 200, 10)
    until_all(reader["key"], 200, 10)
    a, b = servers[0], servers[1]
    A, R = f"Bearer {admin['key']}", f"Bearer {reader['key']}"
    r = a.request("GET", "/api-keys?per_page=1", key=A)
    check(r.status == 200 and r.headers.get("request-id") and
          len(r.json["data"]) == 1 and
          r.json["meta"]["pagination"]["next"].startswith(a.url + "/api-keys?")
          and "key" not in r.json["data"][0], r)
    # A key without api_key.read may read itself only.
    r = b.request("GET", "/api-keys", key=R)
    check(r.status == 403 and r.json["error"]["code"] == "forbidden", r)
    r = b.request("GET", f"/api-keys/{reader['id']}", key=R)
    check(r.status == 200 and
          r.json["data"]["permissions"] == ["client_token.read"], r)
    r = b.request("GET", f"/api-keys/{admin['id']}", key=R)
    check(r.status == 403, r)
    # Create over HTTP; it works on another replica.
    r = a.request("POST", "/api-keys", key=A, body={
        "name": "made over http", "permissions": ["client_token.read"],
        "description": None})
    check(r.status == 201 and r.json["data"]["key"].startswith("ctkn_sdbx_"),
          r)
    made = r.json["data"]
    until_all(made["key"], 200, BOUND)
    # Rotate (grace 0): the new key works, the old one is refused.
    r = b.request("POST", f"/api-keys/{made['id']}/rotations", key=A,
                  body={"grace_period_seconds": 0})
    check(r.status == 201 and r.json["data"]["api_key_id"] == made["id"] and
          r.json["data"]["id"].startswith("apkrot_"), r)
    new = r.json["data"]["new_key"]
    until_all(new, 200, BOUND)
    until_all(made["key"], 403, BOUND)
    r = a.request("POST", f"/api-keys/{made['id']}/rotations", key=A,
                  body={"grace_period_seconds": 86401})
    check(r.status == 400 and r.json["error"]["errors"][0]["field"] ==
          "grace_period_seconds", r)
    # PATCH status revoked: refused everywhere, and shown revoked.
    r = a.request("PATCH", f"/api-keys/{made['id']}", key=A,
                  body={"status": "revoked"})
    check(r.status == 200 and r.json["data"]["status"] == "revoked", r)
    until_all(new, 403, BOUND)
    r = a.request("PATCH", f"/api-keys/{made['id']}", key=A,
                  body={"name": "again"})
    check(r.status == 409, r)
    r = a.request("POST", "/api-keys", key=R, body={
        "name": "x", "permissions": ["client_token.read"]})
    check(r.status == 403, r)


def teardown():
    for s in servers or []:
        s.stop()
    env.close()


if __name__ == "__main__":
    setup()
    try:
        main([test_created_key_works_everywhere_and_revocation_reaches_all,
              test_rotation_grace_is_honoured,
              test_expired_key_is_refused_everywhere,
              test_import_moves_a_key_file_onto_the_log,
              test_on_a_trusted_log_scopes_and_the_schema_gate_hold,
              test_http_routes_in_paddles_shapes,
              test_last_used_is_rate_limited])
    finally:
        teardown()
