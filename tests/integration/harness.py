"""Shared helpers for ctkn's integration tests (run by ctest, label
"integration", against the real Kafka broker that the ctest fixture starts).

Environment: CTKN_BIN (the ctkn executable), CTKN_RAWPRODUCE (the test
producer), CTKN_TEST_BROKERS (bootstrap address).
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

CTKN = os.environ["CTKN_BIN"]
RAW = os.environ.get("CTKN_RAWPRODUCE", "")
BROKERS = os.environ["CTKN_TEST_BROKERS"]


class Result:
    def __init__(self, proc, elapsed):
        self.rc = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.elapsed = elapsed

    @property
    def json(self):
        return json.loads(self.out)

    @property
    def lines(self):
        return [json.loads(l) for l in self.out.splitlines() if l.strip()]

    @property
    def error(self):
        """The error envelope's "error" object from stderr."""
        first = self.err.splitlines()[0] if self.err else "{}"
        return json.loads(first)["error"]

    def __repr__(self):
        return f"rc={self.rc} out={self.out!r} err={self.err!r}"


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# The scopes of the writer key every trusted Env gives its processes: every
# record type ctkn writes (tokens, destinations, deliveries, API keys).
WRITER_SCOPES = ("client_token.*", "notification_setting.*",
                 "notification.*", "api_key.*")

_root = None


def trust_root():
    """The trust root of this test process, made once (`ctkn trust init`):
    (secret key file, public key file). Every trusted Env's keyring is
    signed by it, so one $CTKN_TRUST_ROOT reads every Env's topic."""
    global _root
    if _root is None:
        d = tempfile.mkdtemp(prefix="ctkn-root-")
        atexit.register(shutil.rmtree, d, True)
        key = os.path.join(d, "root.key")
        r = run([CTKN, "trust", "init", "--root-key", key])
        check(r.rc == 0, f"trust init failed: {r}")
        _root = (key, key + ".pub")
    return _root


class Env:
    """A fresh topic and a scratch directory for projections.

    Trusted (the default): the process's trust root (trust_root()), and a
    writer key of WRITER_SCOPES on the topic's keyring (schema version 2
    enabled, for API-key and delivery records). self.vars holds
    CTKN_TRUST_ROOT and CTKN_WRITER_KEY; every ctkn that ctkn() runs gets
    them (env= overrides), and so does os.environ, so that the processes a
    test starts itself (Server, Follower, Popen) read and write signed too.
    trust=False: a topic without a keyring, and both variables empty, for
    the tests that set up trust themselves or append unsigned records."""

    def __init__(self, partitions=3, name="t", trust=True):
        self.topic = f"it-{name}-{uuid.uuid4().hex[:10]}"
        self.dir = tempfile.mkdtemp(prefix=f"ctkn-{name}-")
        self.db = self.path("db")
        self.vars = {"CTKN_TRUST_ROOT": "", "CTKN_WRITER_KEY": ""}
        self.root = self.pub = self.writer = None
        r = self.ctkn("init", "--partitions", str(partitions))
        check(r.rc == 0, f"init failed: {r}")
        if trust:
            self.trust()

    def trust(self, brokers=None):
        """The process's trust root, and a writer key of WRITER_SCOPES on
        the topic's keyring (on brokers, default BROKERS), in self.vars and
        os.environ."""
        self.root, self.pub = trust_root()
        self.writer = self.path("writer.key")
        scopes = [a for s in WRITER_SCOPES for a in ("--scope", s)]
        self.ok("trust", "key", "add", "--root-key", self.root,
                "--name", "harness", *scopes, "--out", self.writer,
                brokers=brokers)
        self.ok("trust", "schema", "enable", "2", "--root-key", self.root,
                brokers=brokers)
        self.vars = {"CTKN_TRUST_ROOT": self.pub,
                     "CTKN_WRITER_KEY": self.writer}
        os.environ.update(self.vars)

    def path(self, name):
        return os.path.join(self.dir, name)

    def ctkn(self, *args, db=None, brokers=None, timeout=60, env=None,
             input=None):
        argv = [CTKN, *args, "--topic", self.topic,
                "--brokers", brokers or BROKERS, "--db", db or self.db]
        return run(argv, timeout=timeout,
                   env={**getattr(self, "vars", {}), **(env or {})},
                   input=input)

    def ok(self, *args, **kw):
        r = self.ctkn(*args, **kw)
        check(r.rc == 0, f"ctkn {' '.join(args)} failed: {r}")
        return r

    def end_offsets(self):
        return log_end_offsets(self.topic)

    def events(self):
        """The events on the topic: its records but the checkpoints and
        keyrings a trusted topic holds too (writers checkpoint what they
        append, and `serve --writer-key` heartbeats), as a fresh
        projection of the whole topic applies, rejects or quarantines
        them."""
        db = self.path("events-" + uuid.uuid4().hex[:8])
        st = self.ok("project", db=db).json["data"]
        shutil.rmtree(db, ignore_errors=True)
        return st["applied"] + st["rejected"] + st["quarantined"]

    def digest(self, db=None):
        return self.ok("digest", db=db).json["data"]

    def fresh_digest(self, name="fresh"):
        """Project the whole topic into a new directory and digest it."""
        db = self.path(name)
        shutil.rmtree(db, ignore_errors=True)
        self.ok("project", db=db)
        return self.digest(db)

    def raw(self, partition, key, value: bytes, etype="-", schema="-",
            signed=True):
        """Append one raw record (rawproduce.c), bypassing every check:
        on a trusted Env signed with its writer key (and its checkpoint
        after it), as poison from a genuine writer; unsigned when the Env
        is not trusted or signed is False. Returns (partition, offset)."""
        e = {**os.environ, **getattr(self, "vars", {})}
        if not signed:
            e.update(CTKN_TRUST_ROOT="", CTKN_WRITER_KEY="")
        out = subprocess.run(
            [RAW, BROKERS, self.topic, str(partition), key, value.hex(),
             etype, schema], capture_output=True, text=True, timeout=60,
            env=e)
        check(out.returncode == 0, f"rawproduce failed: {out.stderr}")
        p, o = out.stdout.split()
        return int(p), int(o)

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        w = getattr(self, "writer", None)
        if w and os.environ.get("CTKN_WRITER_KEY") == w:
            os.environ.update(CTKN_TRUST_ROOT="", CTKN_WRITER_KEY="")


def run(argv, timeout=60, env=None, input=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=e, input=input)
    return Result(p, time.monotonic() - t0)


# KIP-848 consumer groups (the consumer-group protocol, GA on Kafka 4).
KIP848 = ["-X", "group.protocol=consumer"]


def kip848_unsupported():
    """Why KIP-848 groups cannot be tried here, or None when they can: the
    broker must be Kafka 4 (CTKN_KAFKA_VERSION, empty for deploy/kafka's
    default 4.1), and this build's librdkafka must know group.protocol
    (Debian 12's 2.0.2 does not; 2.14.2 from scripts/install-librdkafka
    does). ctkn refuses an -X property librdkafka lacks before it connects,
    so the probe needs no broker."""
    v = os.environ.get("CTKN_KAFKA_VERSION", "")
    if v and int(v.split(".")[0]) < 4:
        return f"Kafka {v} has no KIP-848 groups by default (Kafka 4 has)"
    r = run([CTKN, "tail", "--topic", "probe", "--brokers", "127.0.0.1:1",
             "--timeout", "1", "--exit-at-end", *KIP848], timeout=30)
    if r.rc == 2 and "group.protocol" in r.err:
        return ("this build's librdkafka has no group.protocol (Debian 12's "
                "2.0.2 predates KIP-848)")
    return None


def main(tests):
    """Run each test function; print a summary line ctest can read.
    CTKN_IT_ONLY=name[,name]: only those (while working on one)."""
    only = [x for x in os.environ.get("CTKN_IT_ONLY", "").split(",") if x]
    if only:
        tests = [t for t in tests if t.__name__ in only]
    failed = 0
    for t in tests:
        t0 = time.monotonic()
        try:
            t()
            print(f"ok   {t.__name__} ({time.monotonic() - t0:.1f}s)",
                  flush=True)
        except Exception as e:  # report every failure, then fail the run
            failed += 1
            print(f"FAIL {t.__name__}: {e}", flush=True)
            import traceback
            traceback.print_exc()
    print(f"{len(tests) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def partition_for(key, n):
    """The partition ctkn's producer picks for key among n: Kafka's
    murmur2 partitioner (the Java client's), toPositive(murmur2) % n."""
    data = key.encode()
    m, h = 0x5bd1e995, (0x9747b28c ^ len(data)) & 0xffffffff
    for i in range(0, len(data) - len(data) % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> 24
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    tail = data[len(data) - len(data) % 4:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if len(tail) >= 1:
        h ^= tail[0]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return (h & 0x7fffffff) % n


def topic_command(*args):
    """Run Kafka's own topic admin tool (from the jar cache)."""
    kafka_tool("org.apache.kafka.tools.TopicCommand", *args)


def add_partitions(topic, total):
    topic_command("--alter", "--topic", topic, "--partitions", str(total))


# --- A cluster of brokers (test_cluster.py) ----------------------------------


def kafka(script, *args, timeout=180):
    """Run deploy/kafka/<script> (start or stop) with args, on the Kafka that
    CTKN_KAFKA_STATE and CTKN_KAFKA_PORT name (the ctest fixture sets them),
    for example kafka("stop", "--node", "2", "--kill")."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    p = subprocess.run([os.path.join(root, "deploy", "kafka", script), *args],
                       capture_output=True, text=True, timeout=timeout)
    check(p.returncode == 0, f"deploy/kafka/{script} {args} failed: {p.stderr}")
    return p.stdout.strip()


class Follower:
    """`ctkn project --follow` on its own projection: a reader replica.
    Its stdout and stderr go to DB.log."""

    def __init__(self, env, name):
        self.db = env.path(name)
        self.log = env.path(name + ".log")
        with open(self.log, "w") as f:
            self.proc = subprocess.Popen(
                [CTKN, "project", "--follow", "--topic", env.topic,
                 "--brokers", BROKERS, "--db", self.db],
                stdout=f, stderr=subprocess.STDOUT,
                env={**os.environ, **getattr(env, "vars", {})})

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        with open(self.log) as f:
            return f.read()

    def stop(self, timeout=30):
        """SIGTERM; return the exit code (SIGKILL after timeout seconds)."""
        if self.alive():
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def kafka_tool(main_class, *args, timeout=120):
    """Run one of Kafka's own admin tools (deploy/kafka/tool: the jar cache of
    the Kafka version in use, CTKN_KAFKA_VERSION) against BROKERS and return
    its stdout, e.g.
    kafka_tool("org.apache.kafka.tools.MetadataQuorumCommand", "describe",
    "--status")."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    p = subprocess.run(
        [os.path.join(root, "deploy", "kafka", "tool"), main_class,
         "--bootstrap-server", BROKERS, *args],
        capture_output=True, text=True, timeout=timeout)
    check(p.returncode == 0, f"{main_class} {args} failed: {p.stderr}")
    return p.stdout


class _Reader:
    """Big-endian fields of a Kafka response, in order."""

    def __init__(self, buf):
        self.buf, self.pos = buf, 4  # past the size

    def take(self, fmt):
        import struct
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take(">h")
        s = self.buf[self.pos:self.pos + max(n, 0)].decode()
        self.pos += max(n, 0)
        return s


def _kstring(s):
    import struct
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def _request(port, api_key, version, body):
    """Send one request to the broker on 127.0.0.1:port; its response."""
    import socket
    import struct
    req = struct.pack(">hhi", api_key, version, 7) + _kstring("ctkn-test") + body
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(req)) + req)
        buf = b""
        while len(buf) < 4 or len(buf) < 4 + struct.unpack(">i", buf[:4])[0]:
            chunk = s.recv(65536)
            check(chunk, f"broker on port {port} closed the connection")
            buf += chunk
    r = _Reader(buf)
    check(r.take(">i") == 7, "wrong correlation id")
    return r


def _metadata(port, topic):
    """Metadata v4 (Kafka 4 no longer serves v0-v3; Kafka 3.9 serves v4
    too) from the broker on port itself: ({node id: port},
    {partition: leader} or None while the broker does not know topic)."""
    import struct
    r = _request(port, 3, 4, struct.pack(">i", 1) + _kstring(topic) +
                 struct.pack(">b", 0))
    r.take(">i")  # throttle time
    brokers = {}
    for _ in range(r.take(">i")):  # node id, host, port, rack
        node = r.take(">i")
        r.string()
        brokers[node] = r.take(">i")
        r.string()
    r.string()  # cluster id
    r.take(">i")  # controller id
    leaders = None
    for _ in range(r.take(">i")):  # topics
        err = r.take(">h")
        r.string()
        r.take(">b")  # is_internal
        parts = {}
        for _ in range(r.take(">i")):
            perr, part, leader = r.take(">hii")
            for _ in range(2):  # replicas, isr
                n = r.take(">i")
                r.pos += 4 * n
            if perr == 0 and leader >= 0:
                parts[part] = leader
        if err == 0:
            leaders = parts
    return brokers, leaders


def topic_leaders(port, topic):
    """Ask the broker on 127.0.0.1:port itself (over a plain socket, so no
    client can answer from another broker) for topic's partition leaders;
    return {partition: leader}, or None while the broker does not know the
    topic."""
    return _metadata(port, topic)[1]


def log_end_offsets(topic, brokers=None):
    """The next offset of each of topic's partitions, [p0, p1, ...], asked
    of each partition's leader (ListOffsets v1, latest) over a plain socket:
    no projection needed (ctkn status reads one and never creates it)."""
    import struct
    port = int((brokers or BROKERS).split(",")[0].rsplit(":", 1)[1])
    nodes, leaders = _metadata(port, topic)
    check(leaders is not None, f"no topic {topic}")
    ends = {}
    for node in set(leaders.values()):
        mine = [p for p, l in leaders.items() if l == node]
        body = struct.pack(">ii", -1, 1) + _kstring(topic) + struct.pack(
            ">i", len(mine)) + b"".join(struct.pack(">iq", p, -1)
                                        for p in mine)
        r = _request(nodes[node], 2, 1, body)
        for _ in range(r.take(">i")):  # topics
            r.string()
            for _ in range(r.take(">i")):
                part, err, _ts, off = r.take(">ihqq")
                check(err == 0, f"{topic}/{part}: ListOffsets error {err}")
                ends[part] = off
    return [ends[p] for p in sorted(ends)]


def wait_topic_everywhere(topic, partitions, ports, timeout=30):
    """Wait until every broker (by port) knows topic and a leader for each of
    its partitions. A topic is created through one broker; the others learn
    of it a moment later, and a client asking them first is told it does not
    exist."""
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            leaders = topic_leaders(port, topic)
            if leaders is not None and len(leaders) == partitions:
                break
            check(time.monotonic() < deadline,
                  f"broker on port {port} never learned {topic}: {leaders}")
            time.sleep(0.05)


# --- The HTTP API (`ctkn serve`) ---------------------------------------------


def free_port():
    """A loopback TCP port that nothing listens on right now."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HTTP {self.status} {self.headers} {self.body[:2000]!r}"


class Server:
    """`ctkn serve` on a free loopback port against env's topic.

    It makes a key file with `ctkn apikey create`, one key per (name,
    permissions) pair in `keys` (self.keys[name] is the key; none: no key
    file, only keys on the log), starts the
    server with its own projection (db, default DIR/NAME-db), its output in
    DIR/NAME.log, and waits until GET /healthz answers 200. stop() sends
    SIGTERM and checks that the server exits 0.
    """

    DEFAULT_KEYS = (("writer", "client_token.read,client_token.write"),
                    ("reader", "client_token.read"))

    def __init__(self, env, name="api", keys=DEFAULT_KEYS, db=None,
                 args=(), scheme="http", cafile=None, timeout=60):
        """With args holding --tls-cert and --tls-key, pass scheme="https"
        and cafile, the CA file that verifies the server's certificate."""
        check(scheme in ("http", "https"), f"scheme {scheme}")
        self.env = env
        self.scheme = scheme
        self.cafile = cafile
        self.keyfile = env.path(name + "-keys.jsonl")
        self.db = db or env.path(name + "-db")
        self.log = env.path(name + ".log")
        self.keys = {}
        for kname, perms in keys:
            r = run([CTKN, "apikey", "create", "--file", self.keyfile,
                     "--name", kname, "--permissions", perms])
            check(r.rc == 0, f"apikey create {kname} failed: {r}")
            self.keys[kname] = r.json["data"]["key"]
        self.proc = None
        for _ in range(3):  # a port taken between free_port() and bind()
            self.port = free_port()
            self.url = f"{scheme}://127.0.0.1:{self.port}"
            with open(self.log, "a") as f:
                keyargs = ["--api-keys", self.keyfile] if keys else []
                self.proc = subprocess.Popen(
                    [CTKN, "serve", "--listen", f"127.0.0.1:{self.port}",
                     *keyargs, "--public-url", self.url,
                     "--brokers", BROKERS, "--topic", env.topic,
                     "--db", self.db, *args],
                    stdout=f, stderr=subprocess.STDOUT, env=self.environ())
            if self._wait_ready(timeout):
                return
            if self.proc.poll() is None:
                self.stop(check_exit=False)
                break
        raise AssertionError(f"ctkn serve never became ready:\n"
                             f"{self.output()[-4000:]}")

    def environ(self):
        """The server's environment: its Env's trust (Env.vars), and no
        staleness limit unless the test sets one (--max-staleness or
        $CTKN_MAX_STALENESS): a read-only replica of a test that writes
        for more than a minute without a heartbeating writer would
        otherwise answer 503 (the trust tests test staleness)."""
        return {"CTKN_MAX_STALENESS": "0", **os.environ,
                **getattr(self.env, "vars", {})}

    def _wait_ready(self, timeout):
        import http.client
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.request("GET", "/healthz", key=None).status == 200:
                    return True
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def output(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def request(self, method, path, body=None, key="writer", headers=None,
                timeout=30):
        """One request; returns a Response whatever its status. key is a
        name in self.keys, None for no Authorization header, or a raw
        header value when it is not a key name. A dict or list body is
        sent as JSON, bytes and str as they are."""
        h = dict(headers or {})
        if key is not None:
            h.setdefault("Authorization",
                         f"Bearer {self.keys[key]}" if key in self.keys
                         else key)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        c = self.connection(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Response(r.status,
                            {k.lower(): v for k, v in r.getheaders()},
                            data.decode("utf-8", errors="replace"))
        finally:
            c.close()

    def connection(self, timeout=30):
        """A new http.client connection to the server (TLS when it has a
        certificate), for tests that need more than request()."""
        import http.client
        if self.scheme == "https":
            import ssl
            ctx = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection("127.0.0.1", self.port,
                                               timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)

    def run_client(self, what, argv, cwd, env, timeout=600, tail=None):
        """Run a client program against this server: env plus CTKN_API_URL,
        CTKN_API_KEY (the writer) and CTKN_API_KEY_READ. Print its output
        (the last `tail` characters), and fail with the server log's tail
        unless it exits 0."""
        p = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout,
            env={**env, "CTKN_API_URL": self.url,
                 "CTKN_API_KEY": self.keys["writer"],
                 "CTKN_API_KEY_READ": self.keys["reader"]})
        print(p.stdout[-tail:] if tail else p.stdout, end="")
        print(p.stderr[-tail:] if tail else p.stderr, end="")
        check(p.returncode == 0,
              f"{what} exited {p.returncode}; server log tail:\n"
              f"{self.output()[-3000:]}")

    def stop(self, timeout=30, check_exit=True):
        """SIGTERM; wait; check that it exited 0 (SIGKILL after timeout
        seconds, which fails the check)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            check(not check_exit,
                  f"ctkn serve ignored SIGTERM for {timeout}s:\n"
                  f"{self.output()[-4000:]}")
        if check_exit:
            check(rc == 0, f"ctkn serve exited {rc} on SIGTERM:\n"
                           f"{self.output()[-4000:]}")
        return rc


def deploy_key(env, name="deploy.key"):
    """A deployment key file in env's directory (64 random hex digits,
    mode 0600), for --secret-key-file; returns its path."""
    import secrets
    path = env.path(name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(32).encode() + b"\n")
    finally:
        os.close(fd)
    return path


def repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))


def cache_dir(*parts):
    """A directory under the repository's git-ignored .cache/ (or
    $CTKN_CACHE_DIR), created if missing: downloads kept across runs."""
    base = os.environ.get("CTKN_CACHE_DIR") or os.path.join(repo_root(),
                                                            ".cache")
    d = os.path.join(base, *parts)
    os.makedirs(d, exist_ok=True)
    return d
