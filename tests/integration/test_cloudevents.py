"""Every event record is also a CloudEvent in Kafka binary mode: read with
the official CloudEvents Python SDK's Kafka binding (cloudevents.v1.kafka,
pinned in cloudevents-requirements.txt), each record's attributes match
what `ctkn history` says and its data decodes with proto/ctkn.proto.

Needs a virtualenv with the pinned packages in the build tree, made once.
Where that cannot be done (no venv module, no package index), the test
says so and is skipped (exit 77).
"""
import json
import os
import shutil
import subprocess
import sys

from harness import BROKERS, CTKN, Env, check, main

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
REQS = os.path.join(HERE, "cloudevents-requirements.txt")
VENV = os.path.join(os.path.dirname(os.path.abspath(CTKN)), "pyvenv-ce")
PY = os.path.join(VENV, "bin", "python")

READER = r'''
import json, sys
from confluent_kafka import Consumer, TopicPartition
from cloudevents.v1.kafka import KafkaMessage, from_binary
import ctkn_pb2

brokers, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": brokers, "group.id": "ce-test",
              "enable.auto.commit": False})
md = c.list_topics(topic, timeout=10).topics[topic]
c.assign([TopicPartition(topic, p, 0) for p in md.partitions])
out, seen = [], 0
while seen < n:
    m = c.poll(10)
    if m is None:
        break
    if m.error():
        continue
    seen += 1
    headers = dict(m.headers() or [])
    if "ce_id" not in headers:
        continue  # a writer's checkpoint: not an event
    def data(b):
        ev = ctkn_pb2.Event()
        ev.ParseFromString(b)
        return {"id": ev.data.id, "name": ev.data.name}
    e = from_binary(KafkaMessage(headers, m.key(), m.value()),
                    data_unmarshaller=data)
    got = {k: e[k] for k in ("specversion", "id", "source", "type", "time",
                             "datacontenttype", "partitionkey")}
    if isinstance(got["partitionkey"], bytes):
        got["partitionkey"] = got["partitionkey"].decode()
    out.append(got | {"data": e.data})
print(json.dumps(out))
'''


def prepare():
    marker = os.path.join(VENV, ".requirements")
    with open(REQS) as f:
        want = f.read()
    if not (os.path.exists(marker) and open(marker).read() == want):
        shutil.rmtree(VENV, ignore_errors=True)
        r = subprocess.run([sys.executable, "-m", "venv", VENV],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"python3 -m venv failed: {r.stderr[-300:]}"
        r = subprocess.run([PY, "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", "-r", REQS],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            return None, f"pip install failed: {r.stderr[-300:]}"
        with open(marker, "w") as f:
            f.write(want)
    gen = os.path.join(VENV, "gen")
    os.makedirs(gen, exist_ok=True)
    r = subprocess.run([PY, "-m", "grpc_tools.protoc",
                        "-I" + os.path.join(ROOT, "proto"),
                        "--python_out=" + gen,
                        os.path.join(ROOT, "proto", "ctkn.proto")],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"protoc failed: {r.stderr}")
    return gen, None


def test_every_event_is_a_cloudevent():
    gen, why = prepare()
    if gen is None:
        print(f"SKIP: {why}")
        sys.exit(77)
    env = Env(name="ce", partitions=2)
    try:
        a = env.ok("create", "--name", "first").json["data"]
        b = env.ok("create", "--name", "second").json["data"]
        env.ok("revoke", a["id"])
        n = sum(env.end_offsets())
        p = subprocess.run([PY, "-c", READER, BROKERS, env.topic, str(n)],
                           capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": gen})
        check(p.returncode == 0, f"reader failed: {p.stderr[-2000:]}")
        events = json.loads(p.stdout)
        check(len(events) == 3, f"three events: {events}")
        want = []
        for tok in (a, b):
            want.extend(env.ok("history", tok["id"]).lines)
        by_id = {e["id"]: e for e in events}
        for h in want:
            e = by_id.get(h["event_id"])
            check(e is not None, f"no CloudEvent for {h}")
            check(e["specversion"] == "1.0" and
                  e["type"] == h["event_type"] and
                  e["time"] == h["occurred_at"] and
                  e["source"] == "urn:ctkn:topic:" + env.topic and
                  e["datacontenttype"].startswith("application/protobuf") and
                  e["partitionkey"] == h["data"]["id"] and
                  e["data"] == {"id": h["data"]["id"],
                                "name": h["data"]["name"]},
                  f"{e} vs {h}")
    finally:
        env.close()


if __name__ == "__main__":
    main([test_every_event_is_a_cloudevent])
