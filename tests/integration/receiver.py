#!/usr/bin/env python3
"""A local webhook receiver for the integration tests (stdlib only).

    rx = Receiver()                       # 127.0.0.1, ephemeral port, daemon thread
    url = rx.url("/hooks/a")              # http://127.0.0.1:PORT/hooks/a
    rx.set_mode("/hooks/a", ("fail_n", 2, 503))
    ...                                   # the server under test POSTs to url
    got = rx.wait_for(3, path="/hooks/a") # 3 requests answered 2xx
    sig = got[0].headers["paddle-signature"]
    rx.close()

Every POST is recorded as a Request (path, query, headers, header_list,
body bytes, json, arrival time: `t` on time.monotonic() and `wall` on
time.time(), the status it was answered with). `wall` is for checking a
signature's ts as of arrival (verify-webhooks.mjs's "now"). Modes, per path and changeable at any time with set_mode():

    "ok"                    answer 200 at once (the default)
    ("status", code)        answer `code`
    "hang"                  read the request, answer nothing until the mode
                            changes (then answer as the new mode says), the
                            client hangs up (recorded as "aborted") or the
                            receiver closes; other paths are not held up
    ("fail_n", n, code)     answer `code` to the next n requests, then 200
    ("delay", seconds)      answer 200 after `seconds` (extra)
    ("delay", seconds, code)  answer `code` after `seconds` (extra)
    "drop"                  read the request, close the connection without a
                            response (extra)

stop_listening() closes the listening socket (and every open connection) so
connections are refused; start_listening() binds the same port again.

Run this file to self-test it.
"""
import http.client
import http.server
import json
import select
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

__all__ = ["Receiver", "Request", "Headers"]


class Headers(dict):
    """Header name -> value, looked up case-insensitively. A repeated header
    keeps its values joined with ", "; Request.header_list has them all."""

    def __init__(self, pairs=()):
        super().__init__()
        self._names = {}
        for k, v in pairs:
            lk = k.lower()
            if lk in self._names:
                name = self._names[lk]
                super().__setitem__(name, super().__getitem__(name) + ", " + v)
            else:
                self._names[lk] = k
                super().__setitem__(k, v)

    def _name(self, key):
        return self._names.get(key.lower(), key) if isinstance(key, str) else key

    def __getitem__(self, key):
        return super().__getitem__(self._name(key))

    def __contains__(self, key):
        return super().__contains__(self._name(key))

    def get(self, key, default=None):
        return super().get(self._name(key), default)

    def copy(self):
        return Headers(self.items())


class Request:
    """One recorded POST. `status` is None while it is unanswered (hanging)
    or if it never got a response; `outcome` says why:
    "pending", "answered", "aborted" (the client hung up first),
    "dropped" (mode "drop"), "closed" (the receiver closed first),
    "write_failed" (the response could not be written)."""

    __slots__ = ("seq", "method", "path", "query", "headers", "header_list",
                 "body", "json", "json_error", "t", "wall", "answered_t",
                 "status", "outcome", "client")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))

    @property
    def ok(self):
        return self.status is not None and 200 <= self.status < 300

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def signature(self):
        return self.headers.get("Paddle-Signature")

    def _copy(self):
        r = Request(**{k: getattr(self, k) for k in self.__slots__})
        r.headers = self.headers.copy()
        r.header_list = list(self.header_list)
        return r

    def __repr__(self):
        what = ""
        if isinstance(self.json, dict):
            what = " " + str(self.json.get("event_type"))
            if self.json.get("event_id"):
                what += " " + str(self.json.get("event_id"))
        return (f"<#{self.seq} {self.method} {self.path} status={self.status} "
                f"{self.outcome}{what} {len(self.body)}B>")


def _check_mode(mode):
    if mode in ("ok", "hang", "drop"):
        return mode
    if isinstance(mode, (tuple, list)) and mode:
        kind = mode[0]
        if kind == "status" and len(mode) == 2 and isinstance(mode[1], int):
            return ("status", mode[1])
        if (kind == "fail_n" and len(mode) == 3 and isinstance(mode[1], int)
                and mode[1] >= 0 and isinstance(mode[2], int)):
            return ("fail_n", mode[1], mode[2])
        if kind == "delay" and len(mode) in (2, 3) and mode[1] >= 0:
            code = mode[2] if len(mode) == 3 else 200
            return ("delay", float(mode[1]), int(code))
    raise ValueError(f"unknown receiver mode {mode!r}")


def _norm(path):
    if path is None:
        return None
    return path if path.startswith("/") else "/" + path


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # A client that resets or times out is business as usual here.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class Receiver:
    def __init__(self, default_mode="ok", keep_alive=True, host="127.0.0.1",
                 port=0):
        self._cond = threading.Condition()
        self._reqs = []
        self._modes = {}
        self._fail_left = {}  # path -> requests still to fail in fail_n
        self._default = _check_mode(default_mode)
        self._closed = False
        self._conns = set()
        self._host = host
        self._keep_alive = keep_alive
        self._server = None
        self._thread = None
        self.port = port
        self.start_listening()

    # -- addresses and lifecycle ------------------------------------------

    def url(self, path="/"):
        return f"http://{self._host}:{self.port}{_norm(path)}"

    def close(self):
        """Stop listening, end every open connection and release hung
        requests (recorded as "closed"). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.stop_listening()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def listening(self):
        return self._server is not None

    def stop_listening(self):
        """Close the listening socket (new connections are refused) and
        shut down every open connection, kept-alive ones included."""
        srv, th = self._server, self._thread
        if srv is None:
            return
        self._server = self._thread = None
        srv.shutdown()
        srv.server_close()
        th.join(10)
        with self._cond:
            conns = list(self._conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def start_listening(self, timeout=10):
        """Listen again on the same port (the first call picks it)."""
        if self._server is not None:
            return
        if self._closed:
            raise RuntimeError("receiver is closed")
        handler = self._handler_class()
        deadline = time.monotonic() + timeout
        while True:
            try:
                srv = _Server((self._host, self.port), handler)
                break
            except OSError:
                if self.port == 0 or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        srv.receiver = self
        self.port = srv.server_address[1]
        th = threading.Thread(target=srv.serve_forever,
                              kwargs={"poll_interval": 0.05},
                              name=f"receiver:{self.port}", daemon=True)
        th.start()
        self._server, self._thread = srv, th

    # -- behaviour ----------------------------------------------------------

    def set_mode(self, path, mode):
        mode = _check_mode(mode)
        path = _norm(path)
        with self._cond:
            self._modes[path] = mode
            if mode[0] == "fail_n":
                self._fail_left[path] = mode[1]
            self._cond.notify_all()

    def mode(self, path):
        with self._cond:
            return self._modes.get(_norm(path), self._default)

    # -- observations ---------------------------------------------------------

    def requests(self, path=None):
        """A snapshot (copies) of the recorded requests, in arrival order."""
        path = _norm(path)
        with self._cond:
            return [r._copy() for r in self._reqs
                    if path is None or r.path == path]

    def successful(self, path=None):
        return [r for r in self.requests(path) if r.ok]

    def clear(self):
        with self._cond:
            self._reqs = []

    def wait_for(self, predicate_or_count, path=None, timeout=30):
        """Block until `count` requests on `path` (all paths if None) were
        answered 2xx, and return those; or until predicate(requests on path,
        answered or not) is truthy, and return that list. Raises
        AssertionError after `timeout` seconds."""
        path = _norm(path)
        if isinstance(predicate_or_count, int):
            n = predicate_or_count

            def pred(reqs):
                return sum(1 for r in reqs if r.ok) >= n
            want = f"{n} request(s) answered 2xx"
        elif callable(predicate_or_count):
            pred = predicate_or_count
            want = f"predicate {getattr(pred, '__name__', pred)!s}"
        else:
            raise TypeError("wait_for wants a count or a predicate")
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                reqs = [r._copy() for r in self._reqs
                        if path is None or r.path == path]
                if pred(reqs):
                    if isinstance(predicate_or_count, int):
                        return [r for r in reqs if r.ok]
                    return reqs
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        where = path or "any path"
        ok = sum(1 for r in reqs if r.ok)
        tail = "\n  ".join(repr(r) for r in reqs[-10:]) or "(none)"
        others = ""
        if path is not None:
            with self._cond:
                paths = sorted({r.path for r in self._reqs if r.path != path})
            if paths:
                others = f"\nrequests on other paths: {paths}"
        raise AssertionError(
            f"receiver: timed out after {timeout}s waiting for {want} on "
            f"{where}: {len(reqs)} request(s), {ok} answered 2xx; last:\n  "
            f"{tail}{others}")

    # -- the handler ------------------------------------------------------------

    def _handler_class(self):
        rx = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if rx._keep_alive else "HTTP/1.0"
            timeout = 120  # an idle kept-alive connection is dropped after this

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with rx._cond:
                    rx._conns.add(self.connection)

            def finish(self):
                try:
                    super().finish()
                finally:
                    with rx._cond:
                        rx._conns.discard(self.connection)

            def _read_body(self):
                te = (self.headers.get("Transfer-Encoding") or "").lower()
                if "chunked" in te:
                    parts = []
                    while True:
                        line = self.rfile.readline(65537)
                        size = int(line.split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline(65537)
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n > 0 else b""

            def _reply(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                if not rx._keep_alive:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _client_gone(self):
                try:
                    r, _, _ = select.select([self.connection], [], [], 0)
                    if not r:
                        return False
                    return self.connection.recv(1, socket.MSG_PEEK) == b""
                except (OSError, ValueError):
                    return True

            def _not_post(self):
                self._read_body()
                self._reply(405, b"POST only\n")

            do_GET = do_PUT = do_PATCH = do_DELETE = _not_post

            def do_POST(self):
                body = self._read_body()
                path, _, query = self.path.partition("?")
                pairs = list(self.headers.items())
                req = Request(method="POST", path=path, query=query,
                              headers=Headers(pairs), header_list=pairs,
                              body=body, t=time.monotonic(), wall=time.time(),
                              status=None,
                              outcome="pending",
                              client=self.client_address)
                try:
                    req.json = json.loads(body)
                except ValueError as e:
                    req.json_error = str(e)
                with rx._cond:
                    req.seq = len(rx._reqs) + 1
                    rx._reqs.append(req)
                    rx._cond.notify_all()
                code = self._decide(req, path)
                if code is None:
                    self.close_connection = True
                    return
                # Recorded before it is written, so that a client that has
                # read the response finds it recorded.
                with rx._cond:
                    req.status = code
                    req.answered_t = time.monotonic()
                    req.outcome = "answered"
                    rx._cond.notify_all()
                try:
                    self._reply(code, b"ok\n" if 200 <= code < 300
                                else f"status {code}\n".encode())
                except OSError:
                    self.close_connection = True
                    with rx._cond:
                        req.status = None
                        req.outcome = "write_failed"
                        rx._cond.notify_all()

            def _finish_unanswered(self, req, outcome):
                with rx._cond:
                    req.outcome = outcome
                    req.answered_t = time.monotonic()
                    rx._cond.notify_all()

            def _decide(self, req, path):
                """The status to answer with, or None (recorded) if none."""
                delay_until = None
                with rx._cond:
                    while True:
                        if rx._closed:
                            self._finish_unanswered(req, "closed")
                            return None
                        mode = rx._modes.get(path, rx._default)
                        if mode == "hang":
                            rx._cond.wait(0.05)
                            if self._client_gone():
                                self._finish_unanswered(req, "aborted")
                                return None
                            continue
                        if mode == "ok":
                            return 200
                        if mode == "drop":
                            break
                        if mode[0] == "status":
                            return mode[1]
                        if mode[0] == "fail_n":
                            left = rx._fail_left.get(path, 0)
                            if left > 0:
                                rx._fail_left[path] = left - 1
                                return mode[2]
                            return 200
                        if mode[0] == "delay":
                            delay_until = time.monotonic() + mode[1]
                            code = mode[2]
                            break
                if mode == "drop":
                    self._finish_unanswered(req, "dropped")
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return None
                while time.monotonic() < delay_until:
                    time.sleep(min(0.02, max(0, delay_until - time.monotonic())))
                    if rx._closed:
                        self._finish_unanswered(req, "closed")
                        return None
                return code

        return Handler


# -- self-test ------------------------------------------------------------------

def _post(url, body=b'{"event_type":"x"}', headers=None, timeout=5):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _selftest():
    def check(cond, msg):
        if not cond:
            raise AssertionError(msg)

    rx = Receiver()
    try:
        # ok, headers, body, json
        body = b'{"event_id":"evt_1","event_type":"client_token.created"}'
        st = _post(rx.url("/a"), body, {"Paddle-Signature": "ts=1;h1=ab"})
        check(st == 200, f"ok: {st}")
        got = rx.wait_for(1, path="/a", timeout=5)
        r = got[0]
        check(r.headers["paddle-signature"] == "ts=1;h1=ab", r.headers)
        check(r.headers.get("PADDLE-SIGNATURE") == "ts=1;h1=ab", r.headers)
        check("Paddle-Signature" in r.headers, "contains")
        check(r.signature == "ts=1;h1=ab", "signature")
        check(r.body == body and r.json["event_id"] == "evt_1", repr(r))
        check(r.status == 200 and r.outcome == "answered", repr(r))
        _post(rx.url("/a?x=1"), b"not json")
        r = rx.wait_for(2, path="/a", timeout=5)[1]
        check(r.json is None and r.json_error and r.query == "x=1", repr(r))

        # status
        rx.set_mode("/s", ("status", 503))
        check(_post(rx.url("/s")) == 503, "status 503")
        check(rx.requests("/s")[0].status == 503, "recorded 503")
        check(rx.successful("/s") == [], "503 is not successful")

        # fail_n
        rx.set_mode("/f", ("fail_n", 2, 500))
        codes = [_post(rx.url("/f")) for _ in range(4)]
        check(codes == [500, 500, 200, 200], f"fail_n: {codes}")
        check([q.status for q in rx.requests("/f")] == codes, "fail_n rec")

        # hang: other paths are served meanwhile; a mode change releases it
        rx.set_mode("/h", "hang")
        res = {}
        t = threading.Thread(
            target=lambda: res.setdefault("st", _post(rx.url("/h"), timeout=10)))
        t.start()
        rx.wait_for(lambda rs: len(rs) == 1, path="/h", timeout=5)
        t0 = time.monotonic()
        check(_post(rx.url("/other")) == 200, "other path while hanging")
        check(time.monotonic() - t0 < 1, "other path was held up")
        check(rx.requests("/h")[0].status is None, "hanging has no status")
        check(rx.requests("/h")[0].outcome == "pending", "pending")
        rx.set_mode("/h", ("status", 202))
        t.join(5)
        check(res.get("st") == 202, f"released hang: {res}")
        check(rx.requests("/h")[0].status == 202, "released status")

        # hang: the client gives up -> aborted
        rx.set_mode("/h2", "hang")
        try:
            _post(rx.url("/h2"), timeout=0.5)
            check(False, "hang answered")
        except (TimeoutError, urllib.error.URLError, OSError):
            pass
        rx.wait_for(lambda rs: rs and rs[0].outcome == "aborted",
                    path="/h2", timeout=5)

        # wait_for times out with a helpful message
        try:
            rx.wait_for(1, path="/s", timeout=0.3)
            check(False, "wait_for did not time out")
        except AssertionError as e:
            check("503" in str(e) and "/s" in str(e), str(e))

        # delay and drop
        rx.set_mode("/d", ("delay", 0.3))
        t0 = time.monotonic()
        check(_post(rx.url("/d")) == 200, "delay")
        check(time.monotonic() - t0 >= 0.3, "delay too short")
        rx.set_mode("/x", "drop")
        try:
            _post(rx.url("/x"))
            check(False, "drop answered")
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            pass
        check(rx.requests("/x")[0].outcome == "dropped", "dropped")

        # refused connections, same port, with a hang in flight
        rx.set_mode("/h3", "hang")
        th = threading.Thread(target=lambda: _ignore(_post, rx.url("/h3"),
                                                     timeout=10))
        th.start()
        rx.wait_for(lambda rs: len(rs) == 1, path="/h3", timeout=5)
        port = rx.port
        rx.stop_listening()
        try:
            _post(rx.url("/a"), timeout=2)
            check(False, "stopped receiver answered")
        except urllib.error.URLError as e:
            check(isinstance(e.reason, ConnectionRefusedError), repr(e))
        rx.start_listening()
        check(rx.port == port, "port changed")
        check(_post(rx.url("/a")) == 200, "after start_listening")
        rx.wait_for(3, path="/a", timeout=5)
        th.join(5)

        # keep-alive connection is cut by stop_listening too
        hc = http.client
        c = hc.HTTPConnection("127.0.0.1", rx.port, timeout=5)
        c.request("POST", "/k", body=b"{}")
        check(c.getresponse().read() == b"ok\n", "keep-alive 1")
        rx.stop_listening()
        try:
            c.request("POST", "/k", body=b"{}")
            c.getresponse()
            check(False, "kept-alive connection survived stop_listening")
        except (OSError, hc.HTTPException):
            pass
        rx.start_listening()

        # a hang is released by close()
        rx.set_mode("/h4", "hang")
        th = threading.Thread(target=lambda: _ignore(_post, rx.url("/h4"),
                                                     timeout=10))
        th.start()
        rx.wait_for(lambda rs: len(rs) == 1, path="/h4", timeout=5)
    finally:
        rx.close()
    th.join(5)
    check(not th.is_alive(), "close() did not release the hang")
    check(rx.requests("/h4")[0].outcome in ("closed", "aborted"),
          repr(rx.requests("/h4")))
    print(f"receiver self-test ok ({len(rx.requests())} requests)")


def _ignore(fn, *a, **kw):
    try:
        return fn(*a, **kw)
    except Exception:
        return None


if __name__ == "__main__":
    _selftest()
