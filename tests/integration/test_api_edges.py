"""`ctkn serve` at the edges of HTTP, over the real broker (issue #13, item
5): bytes a client library would never send, so each request goes out as
raw bytes on a socket.

* a NUL in the path, a parameter or a header is a 400 naming it;
* Content-Length with Transfer-Encoding is a 400 that closes the
  connection, and the request smuggled behind it is never answered;
* oversized targets and heads get Paddle's envelope (414, 431) below
  libmicrohttpd's memory limit;
* a client trickling its head is cut off by the header deadline;
* a read-your-writes position on a partition the topic lacks is a 400 at
  once.
"""
import json
import socket
import time

from harness import Env, Server, check, main

HEADER_TIMEOUT = 10  # CTKN_SERVER_HEADER_TIMEOUT_S (server.h)
MAX_URI, MAX_HEADERS, MAX_HEAD = 8 * 1024, 16 * 1024, 32 * 1024


def exchange(srv, data, quiet=1.0):
    """Send data; return (what came back, whether the server closed the
    connection) once it closes or stays silent for `quiet` seconds."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        s.sendall(data)
        s.settimeout(quiet)
        got = b""
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                return got, False
            except ConnectionResetError:
                return got, True
            if not b:
                return got, True
            got += b
    finally:
        s.close()


def responses(raw):
    """Split what came back into (status, headers, body) triples."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        raw = rest[n:]
    return out


def one_error(raw, status, code, field=None):
    """raw holds exactly one answer, Paddle's envelope with status, code
    and (when given) the field it names; returns its headers."""
    rs = responses(raw)
    check(len(rs) == 1, f"want one answer, got {len(rs)}: {raw[:600]!r}")
    st, hdrs, body = rs[0]
    check(st == status, f"want {status}, got {st}: {body[:300]!r}")
    check(hdrs.get("content-type") == "application/json", hdrs)
    doc = json.loads(body)
    check(doc["error"]["code"] == code, doc)
    if field is not None:
        check(doc["error"]["errors"][0]["field"] == field, doc)
    check(doc["meta"]["request_id"] == hdrs["x-request-id"], (doc, hdrs))
    return hdrs


def auth(srv, name="writer"):
    return b"Authorization: Bearer " + srv.keys[name].encode() + b"\r\n"


def test_nul_bytes_are_refused_naming_where():
    env = Env(name="edgenul")
    srv = Server(env)
    try:
        r = srv.request("POST", "/client-tokens", {"name": "Kept"})
        check(r.status == 201, r)
        tid = r.json["data"]["id"].encode()
        before = env.events()
        body = b'{"name": "Changed"}'
        patch = (b"Host: x\r\n" + auth(srv) +
                 b"Content-Type: application/json\r\nContent-Length: " +
                 str(len(body)).encode() + b"\r\n\r\n" + body)
        # %00 decoded, then a raw NUL: the path would name the token.
        for sep in (b"%00", b"\x00"):
            got, _ = exchange(srv, b"PATCH /client-tokens/" + tid + sep +
                              b"zzz HTTP/1.1\r\n" + patch)
            one_error(got, 400, "invalid_field", "path")
        # A parameter's value and its name, both ways.
        for target, field in ((b"per_page=10%00abc", "per_page"),
                              (b"per_page=10\x00abc", "per_page"),
                              (b"status=active&per_page=10\x00abc",
                               "per_page"),
                              (b"per%00page=10", "per")):
            got, _ = exchange(srv, b"GET /client-tokens?" + target +
                              b" HTTP/1.1\r\nHost: x\r\n" + auth(srv) +
                              b"\r\n")
            one_error(got, 400, "invalid_field", field)
        # A header: a valid key, then a NUL and more; and any header.
        key = srv.keys["reader"].encode()
        got, _ = exchange(srv, b"GET /client-tokens HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: Bearer " + key + b"\x00zz\r\n\r\n")
        one_error(got, 400, "invalid_field", "Authorization")
        got, _ = exchange(srv, b"GET /client-tokens HTTP/1.1\r\nHost: x\r\n"
                          b"X-Trace: a\x00b\r\n" + auth(srv) + b"\r\n")
        one_error(got, 400, "invalid_field", "X-Trace")
        # Nothing was changed or appended.
        check(env.events() == before, "a refused request appended")
        g = srv.request("GET", "/client-tokens/" + tid.decode())
        check(g.json["data"]["name"] == "Kept", g)
        # The same requests without a NUL, with bare LF line ends too (the
        # NUL check must not mistake them), are served.
        got, _ = exchange(srv, b"GET /client-tokens?per_page=10 HTTP/1.1\n"
                          b"Host: x\nX-Trace: ab\n" +
                          auth(srv).replace(b"\r\n", b"\n") + b"\n")
        check(responses(got)[0][0] == 200, got[:300])
        got, _ = exchange(srv, b"PATCH /client-tokens/" + tid +
                          b" HTTP/1.1\r\n" + patch)
        check(responses(got)[0][0] == 200, got[:300])
    finally:
        srv.stop()
        env.close()


def test_conflicting_framing_closes_and_smuggles_nothing():
    env = Env(name="edgesmuggle")
    srv = Server(env)
    try:
        before = env.events()
        inner = b'{"name": "Smuggled"}'
        smuggled = (b"POST /client-tokens HTTP/1.1\r\nHost: x\r\n" +
                    auth(srv) + b"Content-Type: application/json\r\n"
                    b"Content-Length: " + str(len(inner)).encode() +
                    b"\r\n\r\n" + inner)
        for framing in (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
                        b"Content-Length: 5\r\nContent-Length: 0\r\n"):
            got, closed = exchange(srv, b"POST /client-tokens HTTP/1.1\r\n"
                                   b"Host: x\r\n" + auth(srv) + framing +
                                   b"\r\n0\r\n\r\n" + smuggled)
            hdrs = one_error(got, 400, "bad_request")
            check(hdrs.get("connection") == "close", hdrs)
            check(closed, "the connection stayed open")
        # Give a smuggled create the time it would take, then look.
        time.sleep(1)
        check(env.events() == before, "a smuggled request was run")
        lines = [json.loads(l) for l in srv.output().splitlines()
                 if l.startswith("{")]
        check(not any(l.get("msg") == "request" and l.get("status") == 201
                      for l in lines), "a smuggled request was answered")
    finally:
        srv.stop()
        env.close()


def test_oversized_heads_get_paddles_envelope():
    env = Env(name="edgebig")
    srv = Server(env)
    try:
        # Past ctkn's bounds, below libmicrohttpd's limit: JSON, closed.
        got, closed = exchange(srv, b"GET /client-tokens?after=" +
                               b"a" * (MAX_URI + 100) + b" HTTP/1.1\r\n"
                               b"Host: x\r\n" + auth(srv) + b"\r\n")
        hdrs = one_error(got, 414, "uri_too_long")
        check(closed and hdrs.get("connection") == "close", hdrs)
        got, closed = exchange(srv, b"GET /client-tokens HTTP/1.1\r\n"
                               b"Host: x\r\nX-Pad: " +
                               b"a" * (MAX_HEADERS + 100) + b"\r\n" +
                               auth(srv) + b"\r\n")
        hdrs = one_error(got, 431, "request_header_fields_too_large")
        check(closed and hdrs.get("connection") == "close", hdrs)
        # Many headers adding up past the bound: the head's size counts.
        pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"b" * 200)
                       for i in range(100))
        got, _ = exchange(srv, b"GET /client-tokens HTTP/1.1\r\nHost: x\r\n"
                          + pad + auth(srv) + b"\r\n")
        one_error(got, 431, "request_header_fields_too_large")
        # At the bounds, the request goes on to its route.
        got, _ = exchange(srv, b"GET /client-tokens?per_page=10&x=" +
                          b"a" * (MAX_URI - 60) + b" HTTP/1.1\r\nHost: x\r\n" +
                          auth(srv) + b"\r\n")
        one_error(got, 400, "invalid_field", "x")
        # Past libmicrohttpd's own limit it answers by itself (documented
        # in docs/operations.md): still refused, never served.
        got, closed = exchange(srv, b"GET /client-tokens HTTP/1.1\r\n"
                               b"Host: x\r\nX-Pad: " + b"a" * (MAX_HEAD + 10)
                               + b"\r\n" + auth(srv) + b"\r\n")
        check(got.startswith(b"HTTP/1.1 431") and closed, got[:200])
        check(srv.request("GET", "/client-tokens").status == 200, "broken")
    finally:
        srv.stop()
        env.close()


def trickle(srv, first, then, every, limit):
    """Send first, then `then` every `every` seconds until the server cuts
    the connection; return the seconds that took (None: never cut within
    limit) and what the server sent."""
    s = socket.create_connection(("127.0.0.1", srv.port))
    try:
        t0 = time.monotonic()
        s.sendall(first)
        s.settimeout(every)
        while time.monotonic() - t0 < limit:
            try:
                b = s.recv(4096)
                return time.monotonic() - t0, b
            except socket.timeout:
                pass
            except OSError:
                return time.monotonic() - t0, b""
            try:
                s.sendall(then)
            except OSError:
                return time.monotonic() - t0, b""
        return None, b""
    finally:
        s.close()


def test_header_deadline_cuts_slow_clients():
    env = Env(name="edgeslow")
    # --client-timeout 2: each trickle below is more often than that, so
    # only the header deadline can end it.
    srv = Server(env, args=("--client-timeout", "2"))
    try:
        results = {}
        import threading

        def headers():
            results["headers"] = trickle(
                srv, b"GET /client-tokens HTTP/1.1\r\n", b"X-Slow: 1\r\n",
                1.0, HEADER_TIMEOUT + 20)

        def line():
            results["line"] = trickle(srv, b"G", b"E", 1.0,
                                      2 + HEADER_TIMEOUT + 20)
        ts = [threading.Thread(target=headers),
              threading.Thread(target=line)]
        for t in ts:
            t.start()
        # Meanwhile others are served, and a keep-alive connection that
        # idles a while before a quick request is not cut.
        c = srv.connection()
        c.request("GET", "/healthz")
        check(c.getresponse().read() and True, "healthz")
        time.sleep(1.5)
        c.request("GET", "/client-tokens", headers={
            "Authorization": "Bearer " + srv.keys["reader"]})
        r = c.getresponse()
        check(r.status == 200, r.status)
        r.read()
        c.close()
        for t in ts:
            t.join()
        took, got = results["headers"]
        check(took is not None, "a header trickle was never cut off")
        check(HEADER_TIMEOUT - 0.5 <= took <= HEADER_TIMEOUT + 1.5,
              f"headers cut after {took:.1f}s")
        check(not got.startswith(b"HTTP/1.1 2"), got[:100])
        took, got = results["line"]
        check(took is not None, "a request-line trickle was never cut off")
        check(took <= 2 + HEADER_TIMEOUT + 1.5, f"line cut after {took:.1f}s")
        check(srv.alive(), "server died")
    finally:
        srv.stop()
        env.close()


def test_position_on_an_unknown_partition_is_400_at_once():
    env = Env(partitions=3, name="edgepos")
    srv = Server(env)
    try:
        for pos in ("3:0", "0:0,7:5"):
            t0 = time.monotonic()
            r = srv.request("GET", "/client-tokens", key="reader",
                            headers={"X-Ctkn-Min-Position": pos})
            took = time.monotonic() - t0
            check(r.status == 400, (pos, r))
            e = r.json["error"]
            check(e["code"] == "invalid_field" and
                  e["errors"][0]["field"] == "X-Ctkn-Min-Position", e)
            check("does not exist: the topic has 3" in e["detail"], e)
            check(took < 1, f"{pos}: answered after {took:.1f}s")
        # A partition the topic has still waits for its offset.
        w = srv.request("POST", "/client-tokens", {"name": "p"})
        r = srv.request("GET", "/client-tokens", key="reader",
                        headers={"X-Ctkn-Min-Position":
                                 w.headers["x-ctkn-position"]})
        check(r.status == 200, r)
    finally:
        srv.stop()
        env.close()


if __name__ == "__main__":
    main([test_nul_bytes_are_refused_naming_where,
          test_conflicting_framing_closes_and_smuggles_nothing,
          test_oversized_heads_get_paddles_envelope,
          test_header_deadline_cuts_slow_clients,
          test_position_on_an_unknown_partition_is_400_at_once])
