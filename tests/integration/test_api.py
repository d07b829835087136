"""`ctkn serve` over the real broker: Paddle's routes, shapes and errors,
authentication, read-your-writes across replicas, limits and operations."""
import http.client
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

from harness import Env, Server, check, main, partition_for

ID_RE = re.compile(r"^ctkn_[0-9a-z]{26}$")
POS_RE = re.compile(r"^\d+:\d+$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                     r"-[0-9a-f]{12}$")


def error_of(r, status, code):
    """Check r is Paddle's error envelope with status and code; return it."""
    check(r.status == status, f"want {status} {code}, got {r}")
    doc = r.json
    check(list(doc) == ["error", "meta"], doc)
    e = doc["error"]
    check(e["code"] == code, f"want {code}: {doc}")
    check(e["type"] == ("api_error" if status >= 500 or status == 429
                        else "request_error"), doc)
    check(e["detail"] and e["documentation_url"].endswith(code), doc)
    check(doc["meta"]["request_id"] == r.headers["x-request-id"], (doc, r))
    check(UUID_RE.match(r.headers["x-request-id"]), r.headers)
    check(r.headers.get("request-id") == r.headers["x-request-id"], r.headers)
    check(r.headers["content-type"] == "application/json", r.headers)
    return e


def raw_request(srv, data, timeout=10):
    """Send bytes as they are; return what comes back until the server
    closes or stays silent for a second."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    try:
        s.sendall(data)
        s.settimeout(1)
        got = b""
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            got += b
        return got
    finally:
        s.close()


def test_authentication_and_permissions():
    env = Env(name="apiauth")
    srv = Server(env)
    try:
        error_of(srv.request("GET", "/client-tokens", key=None), 403,
                 "authentication_missing")
        error_of(srv.request("GET", "/client-tokens", key="Basic dXNlcg=="),
                 403, "authentication_malformed")
        error_of(srv.request("GET", "/client-tokens", key="Bearer"), 403,
                 "authentication_malformed")
        error_of(srv.request("GET", "/client-tokens",
                             key="Bearer not-a-ctkn-key"),
                 403, "authentication_malformed")
        # Well formed, but no such key.
        fake = "ctkn_apikey_" + "A" * 43
        error_of(srv.request("GET", "/client-tokens", key="Bearer " + fake),
                 403, "invalid_token")
        # The read key reads but cannot write; write implies read.
        check(srv.request("GET", "/client-tokens", key="reader").status ==
              200, "reader cannot list")
        e = error_of(srv.request("POST", "/client-tokens", {"name": "x"},
                                 key="reader"), 403, "forbidden")
        check("client_token.write" in e["detail"], e)
        check(srv.request("GET", "/client-tokens", key="writer").status ==
              200, "writer cannot list")
        # The scheme is case-insensitive: Paddle's SDK sends "bearer".
        r = srv.request("GET", "/client-tokens",
                        key="bearer " + srv.keys["reader"])
        check(r.status == 200, r)
        # Nothing was appended by the refused write.
        check(env.events() == 0, env.end_offsets())
        # Key material never reaches the log.
        out = srv.output()
        for k in srv.keys.values():
            check(k not in out, "a key was logged")
    finally:
        srv.stop()
        env.close()


def test_create_get_update_revoke_and_errors():
    env = Env(name="apicrud")
    srv = Server(env)
    try:
        r = srv.request("POST", "/client-tokens",
                        {"name": "Pricing page", "description": "Checkout"})
        check(r.status == 201, r)
        doc = r.json
        tok = doc["data"]
        check(list(doc) == ["data", "meta"], doc)
        check(doc["meta"]["request_id"] == r.headers["x-request-id"], doc)
        check(ID_RE.match(tok["id"]) and tok["status"] == "active", tok)
        check(POS_RE.match(r.headers["x-ctkn-position"]), r.headers)
        tid = tok["id"]
        # Read-your-writes: the server's own projection has it already.
        g = srv.request("GET", f"/client-tokens/{tid}", key="reader")
        check(g.status == 200 and g.json["data"] == tok, (g, tok))
        # The CLI, on the server's projection, agrees byte for byte.
        check(env.ok("get", tid, db=srv.db).json["data"] == tok, "CLI differs")

        u = srv.request("PATCH", f"/client-tokens/{tid}",
                        {"name": "Pricing v2", "description": None})
        check(u.status == 200, u)
        check(u.json["data"]["name"] == "Pricing v2", u)
        check(u.json["data"]["description"] is None, u)
        check(POS_RE.match(u.headers["x-ctkn-position"]), u.headers)

        v = srv.request("PATCH", f"/client-tokens/{tid}",
                        {"status": "revoked"})
        check(v.status == 200 and v.json["data"]["status"] == "revoked", v)
        check(v.json["data"]["revoked_at"] is not None, v)
        before = env.events()

        # The errors: none of them appends anything.
        error_of(srv.request("PATCH", f"/client-tokens/{tid}",
                             {"name": "again"}), 409, "conflict")
        error_of(srv.request("GET", "/client-tokens/ctkn_" + "0" * 26), 404,
                 "not_found")
        e = error_of(srv.request("GET", "/client-tokens/nonsense"), 400,
                     "invalid_field")
        check(e["errors"][0]["field"] == "client_token_id", e)
        error_of(srv.request("POST", "/client-tokens", '{"name": '), 400,
                 "bad_request")
        error_of(srv.request("POST", "/client-tokens", "[1, 2]"), 400,
                 "bad_request")
        error_of(srv.request("POST", "/client-tokens", b""), 400,
                 "bad_request")
        e = error_of(srv.request("POST", "/client-tokens", {"name": ""}),
                     400, "invalid_field")
        check(e["errors"][0]["field"] == "name", e)
        e = error_of(srv.request("POST", "/client-tokens",
                                 {"name": "x", "colour": "red"}),
                     400, "invalid_field")
        check(e["errors"][0]["field"] == "colour", e)
        e = error_of(srv.request("POST", "/client-tokens", {"name": 7}), 400,
                     "invalid_field")
        check(e["errors"][0]["field"] == "name", e)
        e = error_of(srv.request("PATCH", f"/client-tokens/{tid}",
                                 {"status": "paused"}), 400, "invalid_field")
        check(e["errors"][0]["field"] == "status", e)
        error_of(srv.request("PATCH", f"/client-tokens/{tid}", {}), 400,
                 "bad_request")
        # Too large: refused on its Content-Length before the body is
        # read, and also when it arrives chunked with no length.
        r = raw_request(srv, b"POST /client-tokens HTTP/1.1\r\n"
                        b"Host: x\r\nContent-Length: 1000000\r\n"
                        b"Content-Type: application/json\r\n"
                        b"Authorization: Bearer " +
                        srv.keys["writer"].encode() + b"\r\n\r\n")
        check(r.startswith(b"HTTP/1.1 413"), r[:200])
        check(b'"request_body_too_large"' in r, r[:400])
        chunk = b'{"name": "' + b"x" * 70000 + b'"}'
        r = raw_request(srv, b"POST /client-tokens HTTP/1.1\r\n"
                        b"Host: x\r\nTransfer-Encoding: chunked\r\n"
                        b"Authorization: Bearer " +
                        srv.keys["writer"].encode() + b"\r\n\r\n" +
                        b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n")
        check(r.startswith(b"HTTP/1.1 413"), r[:200])
        r = srv.request("DELETE", f"/client-tokens/{tid}")
        error_of(r, 405, "method_not_allowed")
        check("PATCH" in r.headers["allow"], r.headers)
        error_of(srv.request("PUT", "/client-tokens", {"name": "x"}), 405,
                 "method_not_allowed")
        error_of(srv.request("GET", "/no/such/thing"), 404, "not_found")
        e = error_of(srv.request("GET", "/client-tokens?colour=red"), 400,
                     "invalid_field")
        check(e["errors"][0]["field"] == "colour", e)
        check(env.events() == before, "a refused request appended")

        # An idempotency key makes a retried create safe.
        h = {"Idempotency-Key": "order-42"}
        a = srv.request("POST", "/client-tokens", {"name": "Once"}, headers=h)
        b = srv.request("POST", "/client-tokens", {"name": "Once"}, headers=h)
        check(a.status == 201 and b.status == 201, (a, b))
        check(a.json["data"] == b.json["data"], (a, b))
        check(env.events() == before + 1, "retry appended")
    finally:
        srv.stop()
        env.close()


def test_list_pages_verify():
    env = Env(name="apilist")
    srv = Server(env)
    try:
        made = []
        for i in range(7):
            r = srv.request("POST", "/client-tokens", {"name": f"t{i}"})
            check(r.status == 201, r)
            made.append(r.json["data"])
        for t in made[:2]:
            check(srv.request("PATCH", f"/client-tokens/{t['id']}",
                              {"status": "revoked"}).status == 200, t)
        ids = sorted(t["id"] for t in made)

        # Every page, by following next: absolute, on --public-url.
        seen, url, pages = [], "/client-tokens?per_page=2&order_by=id[ASC]" \
            "&status=active,revoked", 0
        while url:
            r = srv.request("GET", url, key="reader")
            check(r.status == 200, r)
            pag = r.json["meta"]["pagination"]
            check(pag["per_page"] == 2 and pag["estimated_total"] == 7, pag)
            seen += [t["id"] for t in r.json["data"]]
            pages += 1
            if not pag["has_more"]:
                break
            check(pag["next"].startswith(srv.url + "/client-tokens?"), pag)
            url = pag["next"][len(srv.url):]
        check(seen == ids and pages == 4, (seen, ids, pages))

        # Defaults: active only, id[DESC], 50 a page.
        r = srv.request("GET", "/client-tokens", key="reader").json
        active = sorted((t["id"] for t in made[2:]), reverse=True)
        check([t["id"] for t in r["data"]] == active, r)
        check(r["meta"]["pagination"]["per_page"] == 50, r)
        # The estimate counts what the filter selects: 5 active of 7.
        check(r["meta"]["pagination"]["estimated_total"] == 5, r)
        r = srv.request("GET", "/client-tokens?status=revoked").json
        check(r["meta"]["pagination"]["estimated_total"] == 2, r)
        # Skip-Count leaves the estimate out; per_page is capped at 200.
        r = srv.request("GET", "/client-tokens?per_page=500",
                        headers={"Skip-Count": "true"}).json
        check("estimated_total" not in r["meta"]["pagination"], r)
        check(r["meta"]["pagination"]["per_page"] == 200, r)
        # status may repeat (Paddle's Go SDK sends it so); the values add.
        r = srv.request("GET", "/client-tokens?status=active&status=revoked"
                        "&order_by=id[ASC]").json
        check([t["id"] for t in r["data"]] == ids, r)
        r = srv.request("GET", "/client-tokens?status=revoked&status=revoked"
                        ).json
        check(sorted(t["id"] for t in r["data"]) ==
              sorted(t["id"] for t in made[:2]), r)
        for q, field in (("per_page=0", "per_page"),
                         ("status=active&status=paused", "status"),
                         ("order_by=name[ASC]", "order_by"),
                         ("status=paused", "status"),
                         ("after=nope", "after"),
                         ("per_page=1&per_page=2", "per_page")):
            e = error_of(srv.request("GET", "/client-tokens?" + q), 400,
                         "invalid_field")
            check(e["errors"][0]["field"] == field, (q, e))

        # verify: the answer for services that authenticate frontends.
        live, dead = made[3], made[0]
        r = srv.request("GET", "/client-tokens/verify?token=" +
                        urllib.parse.quote(live["token"]), key="reader")
        check(r.status == 200, r)
        check(r.json["data"] == {"id": live["id"], "token": live["token"],
                                 "status": "active",
                                 "environment": "sandbox"}, r.json)
        r = srv.request("GET", "/client-tokens/verify?token=" + dead["token"])
        check(r.json["data"]["status"] == "revoked", r)
        error_of(srv.request("GET", "/client-tokens/verify?token=test_" +
                             "x" * 27), 404, "not_found")
        e = error_of(srv.request("GET", "/client-tokens/verify"), 400,
                     "invalid_field")
        check(e["errors"][0]["field"] == "token", e)
    finally:
        srv.stop()
        env.close()


def test_positions_across_replicas():
    """A write on one replica, then a read on another that sends the
    write's position: never stale, however fast it follows."""
    env = Env(name="apirepl")
    a = Server(env, name="a")
    b = Server(env, name="b", args=("--position-wait", "1"))
    try:
        for i in range(25):
            w = a.request("POST", "/client-tokens", {"name": f"r{i}"})
            check(w.status == 201, w)
            tid, pos = w.json["data"]["id"], w.headers["x-ctkn-position"]
            r = b.request("GET", f"/client-tokens/{tid}",
                          headers={"X-Ctkn-Min-Position": pos})
            check(r.status == 200 and r.json["data"] == w.json["data"],
                  (i, r))
            u = a.request("PATCH", f"/client-tokens/{tid}",
                          {"status": "revoked"})
            r = b.request("GET", f"/client-tokens/verify?token="
                          f"{w.json['data']['token']}",
                          headers={"X-Ctkn-Min-Position":
                                   u.headers["x-ctkn-position"]})
            check(r.status == 200 and r.json["data"]["status"] == "revoked",
                  (i, r))
        # A position no replica has reached: a bounded wait, then 503.
        t0 = time.monotonic()
        r = b.request("GET", "/client-tokens",
                      headers={"X-Ctkn-Min-Position": "0:999999999"})
        waited = time.monotonic() - t0
        error_of(r, 503, "service_unavailable")
        check(0.9 <= waited < 5, f"waited {waited:.2f}s")
        check(r.headers.get("retry-after") == "1", r.headers)
        # Several positions at once, one of them far: still a timeout.
        error_of(b.request("GET", "/client-tokens",
                           headers={"X-Ctkn-Min-Position":
                                    "0:0,1:999999999"}), 503,
                 "service_unavailable")
        for bad in ("x", "1", "1:", ":1", "-1:2", "1:2,", "1:2;3:4"):
            e = error_of(b.request("GET", "/client-tokens",
                                   headers={"X-Ctkn-Min-Position": bad}),
                         400, "invalid_field")
            check(e["errors"][0]["field"] == "X-Ctkn-Min-Position", e)
        # Many waiting reads do not pin the workers: with two threads, 20
        # suspended reads and a plain read still answered at once.
        results = []

        def waiter():
            results.append(b.request("GET", "/client-tokens",
                                     headers={"X-Ctkn-Min-Position":
                                              "0:999999999"}).status)
        ts = [threading.Thread(target=waiter) for _ in range(20)]
        for t in ts:
            t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        check(b.request("GET", "/client-tokens").status == 200, "blocked")
        check(time.monotonic() - t0 < 0.5, "a plain read waited")
        for t in ts:
            t.join()
        check(results == [503] * 20, results)
        # Both replicas hold the same projection.
        env.ok("project", db=env.path("check"))
        check(env.digest(a.db)["sha256"] == env.digest(b.db)["sha256"] ==
              env.digest(env.path("check"))["sha256"], "replicas differ")
    finally:
        a.stop()
        b.stop()
        env.close()


def test_concurrent_creates_batch():
    env = Env(name="apiconc")
    srv = Server(env)
    try:
        out = [None] * 64

        def create(i):
            out[i] = srv.request("POST", "/client-tokens", {"name": f"c{i}"})
        ts = [threading.Thread(target=create, args=(i,)) for i in range(64)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        check(all(r.status == 201 for r in out), [r for r in out
                                                  if r.status != 201][:3])
        ids = {r.json["data"]["id"] for r in out}
        check(len(ids) == 64, "duplicate IDs")
        check(env.events() == 64, env.end_offsets())
        # Two racing writers on one token: exactly one wins each round.
        tid = out[0].json["data"]["id"]
        for rnd in range(5):
            res = [None, None]

            def patch(i):
                res[i] = srv.request("PATCH", f"/client-tokens/{tid}",
                                     {"name": f"w{rnd}-{i}"})
            ts = [threading.Thread(target=patch, args=(i,)) for i in (0, 1)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            codes = sorted(r.status for r in res)
            check(codes in ([200, 200], [200, 409]), codes)
    finally:
        srv.stop()
        env.close()


def test_pipelined_writes_match_the_log():
    """Signed creates without a key are appended while the batch before
    them is judged (pipelined); updates to one token, keyed creates and
    plain creates race from 48 clients at once. Every 201 and 200 is in
    the log, as answered; every 409 lost to an event that is; the first
    in the log wins; replicas agree."""
    env = Env(name="apipipe", trust=False)
    root = env.path("root.key")
    env.ok("trust", "init", "--root-key", root)
    writer = env.path("writer.key")
    env.ok("trust", "key", "add", "--root-key", root, "--name", "api",
           "--scope", "client_token.*", "--out", writer)
    srv = Server(env, args=("--trust-root", root + ".pub", "--writer-key",
                            writer))
    try:
        t = srv.request("POST", "/client-tokens", {"name": "raced"})
        check(t.status == 201, t)
        tid = t.json["data"]["id"]
        creates, patches, keyed = [], [], []
        lock = threading.Lock()

        def creator(i):
            for k in range(6):
                r = srv.request("POST", "/client-tokens",
                                {"name": f"p{i}-{k}"})
                with lock:
                    creates.append((f"p{i}-{k}", r))

        def patcher(i):
            for k in range(3):
                name = f"w{i}-{k}"
                r = srv.request("PATCH", f"/client-tokens/{tid}",
                                {"name": name})
                with lock:
                    patches.append((name, r))

        def keyer(i):
            r = srv.request("POST", "/client-tokens", {"name": "once"},
                            headers={"Idempotency-Key": "pipe-key"})
            with lock:
                keyed.append(r)

        ts = ([threading.Thread(target=creator, args=(i,))
               for i in range(32)] +
              [threading.Thread(target=patcher, args=(i,)) for i in range(8)] +
              [threading.Thread(target=keyer, args=(i,)) for i in range(8)])
        for th in ts:
            th.start()
        for th in ts:
            th.join()
    finally:
        srv.stop()
    try:
        bad = [r for _, r in creates if r.status != 201]
        check(not bad, bad[:3])
        check(all(r.status == 201 for r in keyed), keyed)
        check(len({r.json["data"]["id"] for r in keyed}) == 1,
              "one idempotency key, several tokens")
        codes = {r.status for _, r in patches}
        check(codes <= {200, 409} and 200 in codes, codes)
        # What the log says, read by a replica of its own.
        vars_ = {"CTKN_TRUST_ROOT": root + ".pub", "CTKN_WRITER_KEY": ""}
        replica = env.path("replica")
        env.ok("project", db=replica, env=vars_)
        for name, r in creates:
            d = r.json["data"]
            g = env.ok("get", d["id"], db=replica, env=vars_).json["data"]
            check(g["name"] == name and g["token"] == d["token"], (g, d))
        hist = env.ok("history", tid, db=replica, env=vars_).out.splitlines()
        names = [json.loads(x)["data"]["name"] for x in hist][1:]
        won = [name for name, r in patches if r.status == 200]
        # Every 200 is one event of the token's history, in its order of
        # versions, and nothing else is: a 409 lost to one of those.
        check(sorted(names) == sorted(won), (names, won))
        for name, r in patches:
            if r.status == 200:
                check(r.json["data"]["name"] == name, r)
        last = env.ok("get", tid, db=replica, env=vars_).json["data"]
        check(last["name"] == names[-1], (last, names))
        # The server's projection, brought to the same offsets (its
        # closing checkpoints came after its follower stopped), agrees.
        env.ok("project", db=srv.db, env=vars_)
        check(env.digest(replica) == env.digest(srv.db), "replicas disagree")
    finally:
        env.close()


def test_health_and_metrics():
    env = Env(name="apiops")
    srv = Server(env, args=("--max-lag", "0"))
    try:
        h = srv.request("GET", "/healthz", key=None)
        check(h.status == 200 and h.json["data"]["status"] == "ready", h)
        check(h.json["data"]["lag"] == 0 and h.json["data"]["max_lag"] == 0, h)
        for i in range(3):
            srv.request("POST", "/client-tokens", {"name": f"m{i}"})
        srv.request("GET", "/client-tokens/ctkn_" + "0" * 26)
        m = srv.request("GET", "/metrics", key=None)
        check(m.status == 200, m)
        check(m.headers["content-type"].startswith("text/plain"), m.headers)
        body = m.body

        def value(line_prefix):
            for line in body.splitlines():
                if line.startswith(line_prefix + " "):
                    return float(line.split()[-1])
            raise AssertionError(f"no {line_prefix} in metrics:\n{body}")
        check(value('ctkn_http_requests_total{route="create",status="201"}')
              == 3, body)
        check(value('ctkn_http_requests_total{route="get",status="404"}')
              == 1, body)
        check(value('ctkn_http_request_duration_seconds_count'
                    '{route="create"}') == 3, body)
        check(value('ctkn_http_request_duration_seconds_bucket'
                    '{route="create",le="+Inf"}') == 3, body)
        check('ctkn_projection_lag{partition="0"}' in body, body)
        # A record of a newer schema pauses its partition: the lag can
        # only grow, and the replica says it is not ready.
        env.raw(0, "ctkn_" + "1" * 26, b"\x0a\x00", "client_token.created",
                "99")
        env.raw(0, "ctkn_" + "2" * 26, b"\x0a\x00", "client_token.created",
                "1")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            h = srv.request("GET", "/healthz", key=None)
            if h.status == 503:
                break
            time.sleep(0.2)
        check(h.status == 503 and h.json["data"]["status"] == "paused", h)
        check(h.json["data"]["lag"] >= 1, h)
        check(h.json["data"]["partitions"][0]["paused"] is True, h)
        # A revoke may be behind the pause: answers about partition 0's
        # tokens fail closed, "not found" included, and so do lists and
        # token strings no replica knows (they name no partition).
        on = {}
        for c in "0123456789abcdefghjkmnpqrstvwxyz":
            on.setdefault(partition_for("ctkn_" + c * 26, 3), "ctkn_" + c * 26)
        for p in ("/client-tokens", "/client-tokens/verify?token=test_" +
                  "x" * 27, "/client-tokens/" + on[0]):
            a = srv.request("GET", p, key="reader")
            check(a.status == 503 and
                  a.json["error"]["code"] == "service_unavailable" and
                  "paused" in a.json["error"]["detail"], f"{p}: {a}")
        a = srv.request("GET", "/client-tokens/" + on[1], key="reader")
        check(a.status == 404, f"partition 1 is not paused: {a}")
        m = srv.request("GET", "/metrics", key=None).body
        check("ctkn_projector_paused_partitions 1" in m, m)
        # Structured access logs: one JSON object a line, no key material.
        lines = [json.loads(l) for l in srv.output().splitlines()
                 if l.startswith("{")]
        reqs = [l for l in lines if l["msg"] == "request"]
        check(any(l["route"] == "create" and l["status"] == 201 and
                  l["key"] == "writer" and UUID_RE.match(l["request_id"])
                  for l in reqs), reqs[:3])
    finally:
        srv.stop()
        env.close()


def test_rate_limit_and_key_reload():
    env = Env(name="apilimit")
    srv = Server(env, args=("--rate-limit", "5"))
    try:
        got = [srv.request("GET", "/client-tokens", key="reader")
               for _ in range(15)]
        codes = [r.status for r in got]
        check(codes[:5] == [200] * 5, codes)
        check(429 in codes, codes)
        r = next(r for r in got if r.status == 429)
        error_of(r, 429, "too_many_requests")
        check(int(r.headers["retry-after"]) >= 1, r.headers)
        # The limit is per key: the writer still has its own budget.
        check(srv.request("GET", "/client-tokens").status == 200, "shared")
        time.sleep(1.2)
        check(srv.request("GET", "/client-tokens", key="reader").status ==
              200, "no refill")

        # Revoke the reader, add a key, and reload on SIGHUP.
        env_keys = {"keyfile": srv.keyfile}
        subprocess.run([os.environ["CTKN_BIN"], "apikey", "revoke", "reader",
                        "--file", env_keys["keyfile"]], check=True,
                       capture_output=True)
        made = subprocess.run(
            [os.environ["CTKN_BIN"], "apikey", "create", "--file",
             env_keys["keyfile"], "--name", "late", "--permissions",
             "client_token.read"], check=True, capture_output=True, text=True)
        late = json.loads(made.stdout)["data"]["key"]
        # Not before the reload...
        check(srv.request("GET", "/client-tokens", key="Bearer " + late)
              .status == 403, "loaded without SIGHUP")
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if srv.request("GET", "/client-tokens",
                           key="Bearer " + late).status == 200:
                break
            time.sleep(0.1)
        check(srv.request("GET", "/client-tokens", key="Bearer " + late)
              .status == 200, "new key refused after SIGHUP")
        error_of(srv.request("GET", "/client-tokens", key="reader"), 403,
                 "invalid_token")
        # A key file that no longer loads leaves the old keys in force.
        with open(srv.keyfile, "a") as f:
            f.write("not json\n")
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        check(srv.request("GET", "/client-tokens", key="Bearer " + late)
              .status == 200, "a bad reload dropped the keys")
        check(srv.alive(), "a bad key file killed the server")
    finally:
        srv.stop()
        env.close()


def test_slow_clients_and_graceful_stop():
    env = Env(name="apistop")
    srv = Server(env, args=("--client-timeout", "1"))
    try:
        # Half a request, then silence: closed after the timeout, and the
        # server answers others meanwhile.
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /client-tokens HTTP/1.1\r\nHost: x\r\n")
        check(srv.request("GET", "/healthz", key=None).status == 200, "busy")
        s.settimeout(10)
        t0 = time.monotonic()
        data = s.recv(100)
        check(data == b"" or data.startswith(b"HTTP/1.1 408"),
              f"half-open client got {data!r}")
        check(time.monotonic() - t0 < 5, "slow client kept")
        s.close()

        # SIGTERM while creates are in flight: each one that was answered
        # is in the log, and the server exits 0.
        out, lock = [], threading.Lock()

        def create(i):
            try:
                r = srv.request("POST", "/client-tokens", {"name": f"g{i}"})
                with lock:
                    out.append(r)
            except OSError:
                pass  # connected after the listener closed
        ts = [threading.Thread(target=create, args=(i,)) for i in range(32)]
        for t in ts:
            t.start()
        time.sleep(0.05)
        rc = srv.stop()
        for t in ts:
            t.join()
        check(rc == 0, rc)
        check(all(r.status == 201 for r in out), [r for r in out
                                                  if r.status != 201][:3])
        env.ok("project", db=env.path("after"))
        for r in out:
            env.ok("get", r.json["data"]["id"], db=env.path("after"))
    finally:
        srv.stop()
        env.close()


def test_tls():
    env = Env(name="apitls")
    cert, key = env.path("cert.pem"), env.path("key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out",
                    cert], check=True, capture_output=True)
    srv = Server(env, args=("--tls-cert", cert, "--tls-key", key),
                 scheme="https", cafile=cert)
    try:
        r = srv.request("POST", "/client-tokens", {"name": "secure"})
        check(r.status == 201, r)
        # Plain HTTP on the TLS port gets nowhere.
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
        try:
            c.request("GET", "/healthz")
            plain = c.getresponse().status
        except (OSError, http.client.HTTPException):
            plain = None
        check(plain is None or plain >= 400, plain)
        # An untrusted client refuses the server; a trusting one is fine.
        ctx = ssl.create_default_context()
        c = http.client.HTTPSConnection("127.0.0.1", srv.port, context=ctx,
                                        timeout=5)
        try:
            c.request("GET", "/healthz")
            check(False, "verified an unknown certificate")
        except ssl.SSLError:
            pass
    finally:
        srv.stop()
        env.close()


if __name__ == "__main__":
    main([test_authentication_and_permissions,
          test_create_get_update_revoke_and_errors,
          test_list_pages_verify,
          test_positions_across_replicas,
          test_concurrent_creates_batch,
          test_pipelined_writes_match_the_log,
          test_health_and_metrics,
          test_rate_limit_and_key_reload,
          test_slow_clients_and_graceful_stop,
          test_tls])
