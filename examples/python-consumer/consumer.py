"""A downstream service that consumes the ctkn topic (docs/consumers.md).

It keeps its own copy of every client-side token in SQLite, decoding each
Kafka record with the code protoc generates from proto/ctkn.proto, and
applies an event only when ctkn's projector would: the token's next version,
on the token's partition, not after a revoke, with an idempotency key and a
token string no other token holds. So it converges on exactly the state of
every ctkn replica, whatever the delivery.

Two ways to track progress:

  default      every partition is assigned (no consumer group) and the next
               offset of each is stored in the same SQLite transaction as
               the state it produced: exactly once in effect, like ctkn.
  --group G    the group's members share the partitions; an offset is
               committed to Kafka only after the SQLite transaction that
               applied the record: at least once. A redelivered record is
               a version the row already has, so it changes nothing.

Output: one JSON line per applied event with --verbose; at the end one JSON
summary line. Records that cannot be used are reported on stderr with their
coordinates and skipped. A record with a schema version newer than this code
knows stops the consumer (exit 3) before it: skipping would diverge.
Checkpoints and keyrings (ctkn-event-type ctkn.checkpoint, ctkn.keyring)
are not events: only their offsets are taken.

It checks no signature: it believes whoever has Write on the topic, so it
is as safe as the topic's ACLs. A service that must not (the threat ctkn's
trust root answers) reads `ctkn tail --trust-root` instead, which writes
only the events a writer's signed checkpoint proves.

    python -m grpc_tools.protoc -I../../proto --python_out=. ctkn.proto
    python consumer.py --brokers 127.0.0.1:9092 --db tokens.sqlite
"""
import argparse
import json
import signal
import sqlite3
import sys

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException
from confluent_kafka import TopicPartition
from google.protobuf.message import DecodeError

import ctkn_pb2  # generated: python -m grpc_tools.protoc ... ctkn.proto

SCHEMA_VERSION = 1  # the newest ctkn-schema-version this code understands
EXIT_PAUSED = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  description TEXT, status TEXT NOT NULL, created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL, revoked_at INTEGER,
  version INTEGER NOT NULL, partition INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, id TEXT);
CREATE TABLE IF NOT EXISTS offsets (partition INTEGER PRIMARY KEY,
                                    next INTEGER NOT NULL);
"""


class Paused(Exception):
    pass


def headers_of(msg):
    return {k: (v.decode() if v is not None else None)
            for k, v in (msg.headers() or [])}


# Records on the topic that are not events: a writer's signed checkpoint
# and the root-signed keyring placed on every partition (docs/consumers.md).
NOT_EVENTS = ("ctkn.checkpoint", "ctkn.keyring")


def decode(msg, env_prefix):
    """The Event in msg, None for a record that is not an event, or raise
    ValueError naming why it is unusable."""
    h = headers_of(msg)
    if h.get("ctkn-event-type") in NOT_EVENTS and "ce_id" not in h:
        return None
    schema = h.get("ctkn-schema-version")
    if schema is None or not schema.isdigit():
        raise ValueError("missing or malformed ctkn-schema-version header")
    if int(schema) > SCHEMA_VERSION:
        raise Paused(f"schema version {schema} is newer than "
                     f"{SCHEMA_VERSION}: upgrade this consumer")
    ev = ctkn_pb2.Event()
    try:
        ev.ParseFromString(msg.value() or b"")
    except DecodeError as e:
        raise ValueError(f"does not decode: {e}")
    for f in ("event_id", "event_type", "occurred_at", "version", "data"):
        if not ev.HasField(f):
            raise ValueError(f"missing field {f}")
    d = ev.data
    for f in ("id", "token", "name", "status", "created_at", "updated_at"):
        if not d.HasField(f):
            raise ValueError(f"missing field data.{f}")
    if h.get("ctkn-event-type") != ev.event_type:
        raise ValueError("ctkn-event-type header disagrees with the payload")
    if (msg.key() or b"").decode(errors="replace") != d.id:
        raise ValueError("key is not data.id")
    if ev.event_type not in ("client_token.created", "client_token.updated",
                             "client_token.revoked"):
        raise ValueError(f"unknown event_type {ev.event_type!r}")
    if not d.token.startswith(env_prefix):
        raise ValueError(f"token of another environment ({d.token[:5]})")
    return ev


def apply(db, ev, partition):
    """Apply ev inside the caller's transaction. Returns None when applied,
    else the reason it changes nothing (every ctkn replica ignores it too).
    """
    d = ev.data
    row = db.execute("SELECT version, status, token, created_at, "
                     "updated_at, partition FROM tokens WHERE id = ?",
                     (d.id,)).fetchone()
    if ev.event_type == "client_token.created":
        if row is not None or ev.version != 1:
            return "duplicate create"   # redelivered, or a replayed ID
        if ev.HasField("idempotency_key"):
            other = db.execute("SELECT id FROM idempotency WHERE key = ?",
                               (ev.idempotency_key,)).fetchone()
            if other is not None:
                return "idempotency key already taken"  # a racing retry
        if db.execute("SELECT 1 FROM tokens WHERE token = ?",
                      (d.token,)).fetchone():
            return "token string already held"
        db.execute("INSERT INTO tokens VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (d.id, d.token, d.name,
                    d.description if d.HasField("description") else None,
                    d.status, d.created_at, d.updated_at,
                    d.revoked_at if d.HasField("revoked_at") else None,
                    ev.version, partition))
        if ev.HasField("idempotency_key"):
            db.execute("INSERT INTO idempotency VALUES (?, ?)",
                       (ev.idempotency_key, d.id))
        return None
    if row is None:
        return "unknown token"
    version, status, token, created_at, updated_at, part = row
    if ev.version <= version:
        # A redelivery (at least once), or a concurrent writer's event
        # that lost: the first event of a version in the log wins.
        return "version already applied"
    if ev.version != version + 1:
        return f"version gap ({version} -> {ev.version})"
    if status == "revoked":
        return "token is revoked"
    if part != partition:
        return "event on another partition than the token's"
    if (token, created_at) != (d.token, d.created_at) or \
            d.updated_at <= updated_at:
        return "changes an immutable field or goes back in time"
    # The version guard makes the write conditional: a concurrent writer
    # of the same row cannot make it apply twice.
    cur = db.execute(
        "UPDATE tokens SET name=?, description=?, status=?, updated_at=?, "
        "revoked_at=?, version=? WHERE id=? AND version=?",
        (d.name, d.description if d.HasField("description") else None,
         d.status, d.updated_at,
         d.revoked_at if d.HasField("revoked_at") else None,
         ev.version, d.id, ev.version - 1))
    return None if cur.rowcount == 1 else "lost a concurrent update"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--brokers", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="client_tokens")
    ap.add_argument("--db", default="tokens.sqlite", help="SQLite file")
    ap.add_argument("--group", help="consumer group: at least once")
    ap.add_argument("--environment", default="sandbox",
                    choices=("sandbox", "live"))
    ap.add_argument("--exit-at-end", action="store_true",
                    help="stop once the log's end (as of the start) is read")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("-X", action="append", default=[], metavar="KEY=VALUE",
                    help="librdkafka property (SASL, SSL, ...)")
    a = ap.parse_args()
    prefix = "test_" if a.environment == "sandbox" else "live_"

    db = sqlite3.connect(a.db, isolation_level=None)
    db.executescript(SCHEMA)
    conf = {"bootstrap.servers": a.brokers,
            # Never invent a starting point: a missing offset is an error.
            "auto.offset.reset": "earliest" if a.group else "error",
            "enable.auto.commit": False,
            "group.id": a.group or "ctkn-example-assign"}
    conf.update(kv.split("=", 1) for kv in a.X)
    c = Consumer(conf)
    md = c.list_topics(a.topic, timeout=10).topics[a.topic]
    if md.error is not None:
        raise KafkaException(md.error)
    parts = sorted(md.partitions)

    # The log's end as of now, for --exit-at-end.
    end = {p: c.get_watermark_offsets(TopicPartition(a.topic, p),
                                      timeout=10)[1] for p in parts}
    pos = {}
    if a.group:
        # The group decides which partitions are ours; positions start at
        # the group's committed offsets (or the log's start).
        def on_assign(consumer, tps):
            for tp in consumer.committed(tps, timeout=10):
                lo, _ = consumer.get_watermark_offsets(tp, timeout=10)
                pos[tp.partition] = tp.offset if tp.offset >= 0 else lo

        def on_revoke(consumer, tps):
            for tp in tps:
                pos.pop(tp.partition, None)

        c.subscribe([a.topic], on_assign=on_assign, on_revoke=on_revoke)
    else:
        stored = dict(db.execute("SELECT partition, next FROM offsets"))
        c.assign([TopicPartition(a.topic, p, stored.get(p, OFFSET_BEGINNING))
                  for p in parts])
        for p in parts:
            pos[p] = stored.get(p, 0)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    stats = {"applied": 0, "ignored": 0, "unusable": 0, "paused": False}
    rc = 0
    try:
        while not stop:
            msg = c.poll(0.5)
            if msg is None:
                if a.exit_at_end and pos and \
                        all(pos[p] >= end.get(p, 0) for p in pos):
                    break
                continue
            if msg.error():
                raise KafkaException(msg.error())
            p, off = msg.partition(), msg.offset()
            try:
                ev = decode(msg, prefix)
                reason = None
            except ValueError as e:
                ev, reason = None, str(e)
            # One transaction: the state and (without a group) the offset.
            db.execute("BEGIN IMMEDIATE")
            if ev is None and reason is None:
                pass  # not an event: only the offset moves
            elif ev is not None:
                why = apply(db, ev, p)
                if why is None:
                    stats["applied"] += 1
                    if a.verbose:
                        print(json.dumps({
                            "partition": p, "offset": off,
                            "event_type": ev.event_type, "id": ev.data.id,
                            "version": ev.version,
                            "status": ev.data.status}), flush=True)
                else:
                    stats["ignored"] += 1
                    print(f"ignored {p}/{off} {ev.data.id} v{ev.version}: "
                          f"{why}", file=sys.stderr)
            else:
                stats["unusable"] += 1
                print(f"unusable {p}/{off}: {reason}", file=sys.stderr)
            if not a.group:
                db.execute("INSERT OR REPLACE INTO offsets VALUES (?, ?)",
                           (p, off + 1))
            db.execute("COMMIT")
            if a.group:
                # After the commit: a crash in between redelivers the
                # record, and the version check makes that harmless.
                c.commit(message=msg, asynchronous=False)
            pos[p] = off + 1
    except Paused as e:  # raised before the record's transaction began
        stats["paused"] = True
        print(f"paused: {e}", file=sys.stderr)
        rc = EXIT_PAUSED
    finally:
        c.close()
    stats["tokens"] = db.execute("SELECT count(*) FROM tokens").fetchone()[0]
    print(json.dumps(stats), flush=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
