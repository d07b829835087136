#!/usr/bin/env python3
"""`ctkn serve` against its contract, docs/openapi.yaml.

1. schemathesis (pinned, tests/integration/contract-requirements.txt, in a
   venv under .cache/ that is reused while that file is unchanged) runs
   every phase against a live server with bounded examples, checking that
   no response is a server error, and that every status code, content type,
   response header and body is the one the schema documents. Any failure
   fails the test; schemathesis prints each with a curl line to replay it.
   Its key may write client tokens and notification settings, and the
   server has a deployment key, so every documented operation runs.
2. What a schema cannot say, checked by hand: X-Request-Id is the body's
   request ID, writes carry X-Ctkn-Position and a replica reading with it
   as X-Ctkn-Min-Position sees the write, the bearer scheme is
   case-insensitive, pagination links are absolute on --public-url,
   Skip-Count, per_page capping, 404/405/413, keep-alive after an early
   error, /metrics, --rate-limit, TLS, exit 0 on SIGTERM, and writes that
   append nothing, from concurrent clients, back to back.

A schemathesis failure prints a curl line to replay it; set
CTKN_CONTRACT_SEED to rerun with the seed its summary names, and
CTKN_CONTRACT_EXAMPLES for more (or fewer) examples per operation.
"""
import hashlib
import json
import os
import re
import secrets
import base64
import select
import shutil
import socket
import subprocess
import sys
import time

from harness import (Env, Server, cache_dir, check, deploy_key, main,
                     repo_root, run)

SPEC = os.path.join(repo_root(), "docs", "openapi.yaml")
HERE = os.path.dirname(os.path.abspath(__file__))
REQS = os.path.join(HERE, "contract-requirements.txt")
HOOKS = os.path.join(HERE, "schemathesis_hooks.py")
POSITION = re.compile(r"^[0-9]+:[0-9]+$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                  r"[0-9a-f]{12}$")
UNKNOWN_ID = "ctkn_7zzzzzzzzzzzzzzzzzzzzzzzzz"
# Examples per operation and phase; CTKN_CONTRACT_EXAMPLES overrides it.
EXAMPLES = int(os.environ.get("CTKN_CONTRACT_EXAMPLES", "25"))


def schemathesis():
    """The path of the pinned schemathesis, installing it when needed."""
    with open(REQS, "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    venv = os.path.join(cache_dir(), "venv-schemathesis")
    exe = os.path.join(venv, "bin", "schemathesis")
    stamp = os.path.join(venv, ".ctkn-requirements-sha256")
    try:
        with open(stamp) as f:
            if f.read().strip() == want and os.access(exe, os.X_OK):
                return exe
    except OSError:
        pass
    shutil.rmtree(venv, ignore_errors=True)
    for argv in ([sys.executable, "-m", "venv", venv],
                 [os.path.join(venv, "bin", "python"), "-m", "pip", "install",
                  "--quiet", "--disable-pip-version-check", "-r", REQS]):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        check(p.returncode == 0, f"{' '.join(argv)} failed (python3-venv "
              f"is in scripts/install-deps):\n{p.stdout}\n{p.stderr}")
    with open(stamp, "w") as f:
        f.write(want + "\n")
    return exe


def same_request_id(r):
    """X-Request-Id is there, a UUID, Paddle's Request-Id is the same, and
    so is the body's meta.request_id when the body has a meta."""
    rid = r.headers.get("x-request-id")
    check(rid is not None and UUID.match(rid), f"X-Request-Id: {r}")
    check(r.headers.get("request-id") == rid, f"Request-Id: {r}")
    if (r.headers.get("content-type", "").startswith("application/json") and
            "meta" in r.json):
        check(r.json["meta"]["request_id"] == rid,
              f"X-Request-Id {rid} vs meta.request_id: {r}")


def expect_error(r, status, code, field=None):
    check(r.status == status and
          r.headers.get("content-type", "").startswith("application/json"),
          f"expected {status} {code}: {r}")
    e = r.json["error"]
    check(e["code"] == code, f"expected {code}: {r}")
    check(e["documentation_url"].endswith("/" + code), f"{r}")
    if field is not None:
        check(e["errors"][0]["field"] == field, f"expected field {field}: {r}")
    same_request_id(r)
    return e


def create(srv, name, key="writer", headers=None):
    r = srv.request("POST", "/client-tokens", {"name": name}, key=key,
                    headers=headers)
    check(r.status == 201, f"create: {r}")
    return r


# ---- schemathesis -----------------------------------------------------------


def test_schemathesis_finds_nothing():
    exe = schemathesis()
    env = Env(name="contract")
    srv = None
    try:
        # Generated X-Ctkn-Min-Positions are mostly far ahead of the log:
        # a short bound keeps each of those waits (then 503) short.
        srv = Server(env, name="contract",
                     keys=(("writer", "client_token.write,"
                                      "notification_setting.write,"
                                      "api_key.write"),
                           ("reader", "client_token.read")),
                     args=("--position-wait", "0.2",
                           "--secret-key-file", deploy_key(env)))
        # A few tokens and a destination, so reads and lists have
        # something to return.
        for i in range(3):
            create(srv, f"seed {i}")
        r = srv.request("POST", "/notification-settings",
                        {"description": "seed", "type": "url",
                         "destination": "https://example.com/hook",
                         "subscribed_events": ["client_token.created"]})
        check(r.status == 201, f"create a destination: {r}")
        argv = [exe, "run", SPEC, "--url", srv.url,
                "--header", f"Authorization: Bearer {srv.keys['writer']}",
                "--checks", "not_a_server_error,status_code_conformance,"
                "content_type_conformance,response_schema_conformance,"
                "response_headers_conformance",
                "--phases", "examples,coverage,fuzzing,stateful",
                "--mode", "all",
                "--max-examples", str(EXAMPLES),
                "--request-timeout", "30",
                "--workers", "1",
                "--generation-database", "none",
                "--generation-with-security-parameters", "false",
                "--no-color", "--output-truncate", "false"]
        seed = os.environ.get("CTKN_CONTRACT_SEED")
        if seed:
            argv += ["--seed", seed]
        print("+", " ".join(a if "Bearer" not in a else "'Authorization: "
                            "Bearer ...'" for a in argv), flush=True)
        srv.run_client("schemathesis (failures above)", argv, cwd=env.dir,
                       env={**os.environ, "NO_COLOR": "1",
                            "SCHEMATHESIS_HOOKS": HOOKS,
                            "SCHEMATHESIS_TELEMETRY": "false"},
                       timeout=540, tail=60000)
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


# ---- what the schema cannot say --------------------------------------------


def test_request_ids_positions_and_auth_schemes():
    env = Env(name="contract")
    srv = None
    try:
        srv = Server(env, name="contract", args=("--position-wait", "0.5"))
        r = create(srv, "ids")
        same_request_id(r)
        pos = r.headers.get("x-ctkn-position")
        check(pos is not None and POSITION.match(pos), f"position: {r}")
        tid = r.json["data"]["id"]
        check(r.json["data"]["status"] == "active", f"{r}")

        r = srv.request("PATCH", f"/client-tokens/{tid}", {"name": "ids 2"})
        check(r.status == 200 and r.json["data"]["name"] == "ids 2", f"{r}")
        same_request_id(r)
        pos2 = r.headers.get("x-ctkn-position")
        check(pos2 is not None and POSITION.match(pos2), f"position: {r}")
        check(pos2.split(":")[0] == pos.split(":")[0] and
              int(pos2.split(":")[1]) > int(pos.split(":")[1]),
              f"one token's events on one partition, in order: {pos} {pos2}")

        # Reads with the write's position: answered, and see the write.
        for path in (f"/client-tokens/{tid}",
                     "/client-tokens?status=active,revoked",
                     f"/client-tokens/verify?token={r.json['data']['token']}"):
            g = srv.request("GET", path, key="reader",
                            headers={"X-Ctkn-Min-Position": pos2})
            check(g.status == 200, f"GET {path} at {pos2}: {g}")
            same_request_id(g)
        # Not reached within --position-wait (0.5 s here): 503, retry in 1 s.
        t0 = time.monotonic()
        r = srv.request("GET", f"/client-tokens/{tid}",
                        headers={"X-Ctkn-Min-Position": f"{pos2},0:1000000"})
        waited = time.monotonic() - t0
        expect_error(r, 503, "service_unavailable")
        check(r.headers.get("retry-after") == "1", f"Retry-After: {r}")
        check(0.4 < waited < 5, f"waited {waited:.2f}s for a 0.5 s bound")
        for bad in ("soon", "1:", ":1", "-1:0", "0:0,", "0:x"):
            expect_error(srv.request("GET", f"/client-tokens/{tid}",
                                     headers={"X-Ctkn-Min-Position": bad}),
                         400, "invalid_field", "X-Ctkn-Min-Position")

        # Every spelling of the scheme; the SDKs send "bearer".
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            g = srv.request("GET", f"/client-tokens/{tid}",
                            key=f"{scheme} {srv.keys['reader']}")
            check(g.status == 200, f"scheme {scheme}: {g}")

        path = f"/client-tokens/{tid}"
        expect_error(srv.request("GET", path, key=None), 403,
                     "authentication_missing")
        expect_error(srv.request("GET", path, key=""), 403,
                     "authentication_missing")
        expect_error(srv.request("GET", path, key="Bearer"), 403,
                     "authentication_malformed")
        expect_error(srv.request("GET", path,
                                 key=f"Basic {srv.keys['reader']}"),
                     403, "authentication_malformed")
        expect_error(srv.request("GET", path, key="Bearer not-a-key"), 403,
                     "authentication_malformed")
        stranger = "ctkn_apikey_" + base64.urlsafe_b64encode(
            secrets.token_bytes(32)).decode().rstrip("=")
        expect_error(srv.request("GET", path, key=f"Bearer {stranger}"), 403,
                     "invalid_token")
        expect_error(srv.request("POST", "/client-tokens", {"name": "n"},
                                 key="reader"), 403, "forbidden")
        expect_error(srv.request("PATCH", path, {"status": "revoked"},
                                 key="reader"), 403, "forbidden")
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


def test_a_replica_reads_a_write_at_its_position():
    """Two servers on one topic, each with its own projection: a write
    through A, read through B with A's position, is there at once."""
    env = Env(name="contract")
    a = b = None
    try:
        a = Server(env, name="a")
        b = Server(env, name="b")
        for i in range(5):
            r = create(a, f"replica {i}")
            pos = r.headers["x-ctkn-position"]
            tid = r.json["data"]["id"]
            g = b.request("GET", f"/client-tokens/{tid}", key="reader",
                          headers={"X-Ctkn-Min-Position": pos})
            check(g.status == 200 and g.json["data"] == r.json["data"],
                  f"replica read at {pos}: {g}")
            r = a.request("PATCH", f"/client-tokens/{tid}",
                          {"status": "revoked"})
            check(r.status == 200, f"revoke: {r}")
            pos = r.headers["x-ctkn-position"]
            g = b.request("GET", f"/client-tokens/verify?token="
                          f"{r.json['data']['token']}", key="reader",
                          headers={"X-Ctkn-Min-Position": pos})
            check(g.status == 200 and g.json["data"]["status"] == "revoked",
                  f"replica verify at {pos}: {g}")
        a.stop()
        b.stop()
    finally:
        for s in (a, b):
            if s is not None and s.alive():
                s.stop(check_exit=False)
        env.close()


def test_pagination_links_skip_count_and_caps():
    env = Env(name="contract")
    srv = None
    try:
        srv = Server(env, name="contract")
        ids = [create(srv, f"page {i}").json["data"]["id"] for i in range(5)]
        r = srv.request("GET", "/client-tokens?per_page=2&order_by=id[ASC]")
        check(r.status == 200, f"{r}")
        seen = []
        pages = 0
        while True:
            same_request_id(r)
            pages += 1
            pg = r.json["meta"]["pagination"]
            check(pg["per_page"] == 2, f"{pg}")
            check(pg["estimated_total"] >= 5, f"{pg}")
            seen += [t["id"] for t in r.json["data"]]
            nxt = pg["next"]
            check(nxt.startswith(srv.url + "/client-tokens?"),
                  f"next is absolute on --public-url {srv.url}: {nxt}")
            # Paddle's next is there on the last page too.
            check(f"after={seen[-1]}&" in nxt, f"after the last ID: {pg}")
            if not pg["has_more"]:
                break
            r = srv.request("GET", nxt[len(srv.url):])
            check(r.status == 200, f"{r}")
        check(seen == ids and pages == 3, f"pages {pages}: {seen} vs {ids}")

        r = srv.request("GET", "/client-tokens", headers={"Skip-Count": "true"})
        check(r.status == 200 and
              "estimated_total" not in r.json["meta"]["pagination"], f"{r}")
        r = srv.request("GET", "/client-tokens?per_page=500")
        check(r.status == 200 and r.json["meta"]["pagination"]["per_page"] ==
              200, f"per_page is capped at 200: {r}")
        r = srv.request("GET", "/client-tokens")
        check(r.json["meta"]["pagination"]["per_page"] == 50,
              f"default per_page: {r}")
        check([t["id"] for t in r.json["data"]] == ids[::-1],
              f"default order id[DESC]: {r}")

        # status: comma-separated, encoded or not; active by default.
        srv.request("PATCH", f"/client-tokens/{ids[0]}", {"status": "revoked"})
        revoked = [(ids[0], "revoked")]
        active = [(i, "active") for i in ids[1:]]
        for q, want in (("status=revoked", revoked),
                        ("status=active%2Crevoked", revoked + active),
                        ("status=revoked,active", revoked + active),
                        ("status=active", active), ("", active)):
            r = srv.request("GET", f"/client-tokens?order_by=id%5BASC%5D&{q}")
            check(r.status == 200, f"{q}: {r}")
            got = [(t["id"], t["status"]) for t in r.json["data"]]
            check(got == want, f"{q}: {got}")
        for q, field in (("per_page=0", "per_page"), ("per_page=x", "per_page"),
                         ("order_by=name", "order_by"),
                         ("status=paused", "status"), ("after=x", "after")):
            expect_error(srv.request("GET", f"/client-tokens?{q}"), 400,
                         "invalid_field", field)
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


def test_writes_that_append_nothing_back_to_back():
    """Writes the ledger answers without appending (a no-op update, a
    create whose idempotency key is taken) finish in a millisecond, so
    under concurrent clients the command thread runs such batches back to
    back. Each batch's catch-up must not break the ledger's consumer: with
    librdkafka 2.0.2, reassigning every partition on each batch aborted
    the server (rdkafka_assignment.c: Assertion `rktp->rktp_started'
    failed; librdkafka issue 5573) within a few hundred requests."""
    import threading
    env = Env(name="contract")
    srv = None
    try:
        srv = Server(env, name="contract")
        tid = create(srv, "same").json["data"]["id"]
        create(srv, "first", headers={"Idempotency-Key": "taken"})
        outcomes = {}
        lock = threading.Lock()

        def client(kind, n):
            for i in range(n):
                try:
                    if kind == "noop":
                        r = srv.request("PATCH", f"/client-tokens/{tid}",
                                        {"name": "same"})
                    else:
                        r = srv.request("POST", "/client-tokens",
                                        {"name": f"other {i}"},
                                        headers={"Idempotency-Key": "taken"})
                    got = r.status
                except OSError as e:
                    got = type(e).__name__
                with lock:
                    outcomes[(kind, got)] = outcomes.get((kind, got), 0) + 1
                if got not in (200, 409):
                    return
        threads = [threading.Thread(target=client, args=(kind, 250))
                   for kind in ("noop", "taken") for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        check(srv.alive(), f"the server died ({srv.proc.poll()}): {outcomes}"
                           f"\n{srv.output()[-1500:]}")
        check(outcomes == {("noop", 200): 1000, ("taken", 409): 1000},
              f"{outcomes}")
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


def raw_exchange(port, head, body_len, chunk=b"x" * 65536, timeout=30):
    """Send a request head announcing body_len bytes, then the body while
    the server has not answered; return the response bytes. For 413s: the
    server may answer before it has read the whole body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(head)
        sent = 0
        while sent < body_len:
            r, _, _ = select.select([s], [], [], 0)
            if r:
                break
            try:
                n = s.send(chunk[:body_len - sent])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += n
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out += data
            if b"\r\n\r\n" in out:
                hdr, _, rest = out.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", hdr)
                if m and len(rest) >= int(m.group(1)):
                    break
        return out
    finally:
        s.close()


def test_errors_outside_the_schema():
    env = Env(name="contract")
    srv = None
    try:
        srv = Server(env, name="contract")
        tid = create(srv, "errors").json["data"]["id"]
        expect_error(srv.request("GET", "/nope"), 404, "not_found")
        expect_error(srv.request("GET", "/client-tokens/x/y"), 404,
                     "not_found")
        expect_error(srv.request("GET", f"/client-tokens/{UNKNOWN_ID}"), 404,
                     "not_found")
        for method, path in (("DELETE", f"/client-tokens/{tid}"),
                             ("PUT", f"/client-tokens/{tid}"),
                             ("POST", f"/client-tokens/{tid}"),
                             ("DELETE", "/client-tokens"),
                             ("PATCH", "/client-tokens"),
                             ("POST", "/client-tokens/verify"),
                             ("POST", "/healthz")):
            r = srv.request(method, path, {"name": "n"})
            expect_error(r, 405, "method_not_allowed")
            check("GET" in r.headers.get("allow", ""), f"Allow: {r}")
        for body in ("{", "[]", '"name"', "", '{"name":"a","name":"b"}',
                     b'{"name":"\xff"}'):
            expect_error(srv.request("POST", "/client-tokens", body), 400,
                         "bad_request")
        expect_error(srv.request("PATCH", f"/client-tokens/{tid}", {}), 400,
                     "bad_request")
        expect_error(srv.request("PATCH", "/client-tokens/ctkn_x",
                                 {"name": "n"}), 400, "invalid_field", "id")
        expect_error(srv.request("GET", "/client-tokens/verify"), 400,
                     "invalid_field", "token")
        expect_error(srv.request("GET", "/client-tokens/verify?token=x"), 400,
                     "invalid_field", "token")

        # A body far past any valid request: 413, in the envelope, whether
        # the server answers before reading it or after.
        big = 8 << 20
        head = (f"POST /client-tokens HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {srv.keys['writer']}\r\n"
                f"Content-Type: application/json\r\n"
                f"Content-Length: {big}\r\n\r\n").encode()
        out = raw_exchange(srv.port, head, big)
        status_line = out.split(b"\r\n", 1)[0]
        check(b" 413 " in status_line + b" ", f"413 for {big} bytes: "
              f"{out[:600]!r}")
        body = out.partition(b"\r\n\r\n")[2]
        check(json.loads(body)["error"]["code"] == "request_body_too_large",
              f"{out[:600]!r}")

        # An error answered before the body is read must not leave the body
        # to be parsed as the next request on a kept-alive connection (the
        # SDKs' fetch reuses connections).
        c = srv.connection()
        try:
            for key in ("Bearer nonsense", f"Bearer {srv.keys['reader']}"):
                c.request("POST", "/client-tokens",
                          body=json.dumps({"name": "k" * 1000}),
                          headers={"Authorization": key,
                                   "Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                check(r.status == 403, f"{r.status} {data!r}")
                c.request("GET", f"/client-tokens/{tid}",
                          headers={"Authorization":
                                   f"Bearer {srv.keys['reader']}"})
                r = c.getresponse()
                data = r.read()
                check(r.status == 200 and json.loads(data)["data"]["id"] ==
                      tid, f"next request on the connection: {r.status} "
                      f"{data[:300]!r}")
        finally:
            c.close()
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


def test_healthz_and_metrics_need_no_key():
    env = Env(name="contract")
    srv = None
    try:
        srv = Server(env, name="contract")
        create(srv, "metrics")
        r = srv.request("GET", "/healthz", key=None)
        check(r.status == 200, f"{r}")
        same_request_id(r)
        r = srv.request("GET", "/metrics", key=None)
        check(r.status == 200 and
              r.headers.get("content-type", "").startswith("text/plain"),
              f"{r}")
        check(re.search(r"(?m)^# TYPE \w+ (counter|gauge|histogram|summary)$",
                        r.body), f"Prometheus text format: {r.body[:500]}")
        for line in r.body.splitlines():
            if line and not line.startswith("#"):
                check(re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? "
                               r"[-+0-9.eEInfNa]+( [0-9]+)?$", line),
                      f"sample line: {line!r}")
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


def test_rate_limit_answers_429_with_retry_after():
    env = Env(name="contract")
    srv = None
    try:
        srv = Server(env, name="contract", args=("--rate-limit", "5"))
        statuses = []
        limited = None
        for _ in range(40):
            r = srv.request("GET", "/client-tokens", key="reader")
            statuses.append(r.status)
            if r.status == 429 and limited is None:
                limited = r
        check(statuses[0] == 200, f"{statuses}")
        check(limited is not None, f"no 429 in 40 requests at 5/s: {statuses}")
        check(set(statuses) <= {200, 429}, f"{statuses}")
        expect_error(limited, 429, "too_many_requests")
        ra = limited.headers.get("retry-after", "")
        check(ra.isdigit(), f"Retry-After: {limited}")
        time.sleep(int(ra) + 1.0)
        r = srv.request("GET", "/client-tokens", key="reader")
        check(r.status == 200, f"after Retry-After: {r}")
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


def test_tls():
    env = Env(name="contract")
    srv = None
    try:
        cert, key = env.path("cert.pem"), env.path("key.pem")
        r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-keyout", key, "-out", cert, "-days", "1",
                 "-subj", "/CN=127.0.0.1",
                 "-addext", "subjectAltName=IP:127.0.0.1"])
        check(r.rc == 0, f"openssl: {r}")
        srv = Server(env, name="tls", scheme="https", cafile=cert,
                     args=("--tls-cert", cert, "--tls-key", key))
        r = create(srv, "over tls")
        r = srv.request("GET", f"/client-tokens/{r.json['data']['id']}")
        check(r.status == 200, f"{r}")
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


if __name__ == "__main__":
    main([test_request_ids_positions_and_auth_schemes,
          test_a_replica_reads_a_write_at_its_position,
          test_pagination_links_skip_count_and_caps,
          test_errors_outside_the_schema,
          test_healthz_and_metrics_need_no_key,
          test_rate_limit_answers_429_with_retry_after,
          test_tls,
          test_writes_that_append_nothing_back_to_back,
          test_schemathesis_finds_nothing])
