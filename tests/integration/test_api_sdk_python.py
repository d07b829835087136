#!/usr/bin/env python3
"""Paddle's Python SDK (paddle-python-sdk, pinned with its dependencies in
tests/integration/sdk-python-requirements.txt) against `ctkn serve`:

1. sdk-python/paddle_sdk_test.py (unittest, run by the venv's python):
   notification settings create, get, list over every page (next is a URL
   on the last page too), update and delete, each parsed into the SDK's
   NotificationSetting with a known traffic_source and the
   endpoint_secret_key; client tokens create, get, list over every page and
   revoke; the ApiError the SDK raises for 400 invalid_field (naming the
   field), 403, 404, 409 and 429 (Retry-After read as an int); events.list
   over every page (per_page 2, ascending event IDs, each event parsed into
   the SDK's Event with a ClientToken), by type and newest first, and
   event_types.list.
2. A webhook `ctkn notify` signs for a setting made over the API is
   verified by the SDK's Verifier (sdk-python/verify_webhooks.py) as of its
   arrival, and its body parses into the SDK's ClientToken event entity;
   a changed body, another secret and a stale timestamp are refused.
3. The SDK's notifications.list (over every page, by status),
   notifications.get, notification_logs.list and notifications.replay
   (sdk-python/notifications_sdk.py) on that replica, which projects the
   notifications topic; the next notifier run sends the replay once.

The SDK is installed once into a venv in the build tree (pyvenv-paddle-sdk
beside the ctkn binary), again only when the requirements file changes.
Without a package index the test is skipped (exit 77, ctest's
SKIP_RETURN_CODE for it); any other install failure fails it.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

from harness import CTKN, Env, Server, check, deploy_key, main
from receiver import Receiver

HERE = os.path.dirname(os.path.abspath(__file__))
SDK_DIR = os.path.join(HERE, "sdk-python")
REQS = os.path.join(HERE, "sdk-python-requirements.txt")
VENV = os.path.join(os.path.dirname(os.path.abspath(CTKN)),
                    "pyvenv-paddle-sdk")
PY = os.path.join(VENV, "bin", "python")
SKIP = 77
ALLOW_LO = ["--allow-destination-network", "127.0.0.0/8"]
# pip's words when it cannot reach an index at all (as opposed to a pin
# that does not resolve, which fails the test): its connection warnings,
# or no version at all of a pinned package, each of which is on PyPI.
NO_INDEX = re.compile(r"NewConnectionError|Failed to establish a new "
                      r"connection|Temporary failure in name resolution|"
                      r"Name or service not known|Network is unreachable|"
                      r"ProxyError|Max retries exceeded|"
                      r"\(from versions: none\)")


def prepare():
    """Install the pinned SDK into VENV unless it is there already; exit
    77 when no package index can be reached."""
    marker = os.path.join(VENV, ".requirements")
    with open(REQS) as f:
        want = f.read()
    try:
        with open(marker) as f:
            if f.read() == want and os.access(PY, os.X_OK):
                return
    except OSError:
        pass
    check(sys.version_info >= (3, 11), "paddle-python-sdk 1.16.1 requires "
          f"Python >= 3.11, not {sys.version.split()[0]} ({sys.executable})")
    shutil.rmtree(VENV, ignore_errors=True)
    r = subprocess.run([sys.executable, "-m", "venv", VENV],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"python3 -m venv failed (python3-venv is in "
          f"scripts/install-deps): {r.stderr[-500:]}")
    r = subprocess.run([PY, "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "-r", REQS],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        shutil.rmtree(VENV, ignore_errors=True)
        if NO_INDEX.search(r.stderr):
            print(f"SKIP: no package index to install {REQS} from:\n"
                  f"{r.stderr[-800:]}", flush=True)
            sys.exit(SKIP)
        check(False, f"pip install -r {REQS} failed:\n{r.stderr[-2000:]}")
    with open(marker, "w") as f:
        f.write(want)


def sdk_verify(items):
    """verify_webhooks.py (the SDK's Verifier) over items: its verdicts."""
    p = subprocess.run([PY, os.path.join(SDK_DIR, "verify_webhooks.py")],
                       capture_output=True, text=True, timeout=60,
                       input="".join(json.dumps(i) + "\n" for i in items))
    check(p.returncode == 0, f"verify_webhooks.py: {p.stderr}")
    out = [json.loads(line) for line in p.stdout.splitlines()]
    check(len(out) == len(items), f"{len(out)} verdicts for {len(items)}: "
                                  f"{p.stderr}")
    return out


def check_webhook(env, srv, key):
    """A delivery ctkn signs passes the SDK's Verifier; forgeries fail."""
    rx = Receiver()
    try:
        r = srv.request("POST", "/notification-settings", {
            "description": "python sdk verifier", "type": "url",
            "destination": rx.url("/py"),
            "subscribed_events": ["client_token.created"]})
        check(r.status == 201, f"create setting: {r}")
        secret = r.json["data"]["endpoint_secret_key"]
        r = srv.request("POST", "/client-tokens", {"name": "signed"})
        check(r.status == 201, f"create token: {r}")
        tok = r.json["data"]
        n = env.ok("notify", "--secret-key-file", key, "--group",
                   "g-" + env.topic, *ALLOW_LO,
                   db=env.path("notify-db")).json["data"]
        check(n["delivered"] == 1, f"notify: {n}")
        got = rx.wait_for(1, path="/py")[0]
        sig, body = got.headers["paddle-signature"], got.body.decode()
        ts = int(re.match(r"ts=(\d+);", sig).group(1))
        base = {"secret": secret, "signature": sig, "body": body,
                "now": got.wall}
        v = sdk_verify([base,
                        {**base, "body": body.replace("signed", "signex")},
                        {**base, "secret": secret[:-1] + (
                            "A" if secret[-1] != "A" else "B")},
                        {**base, "now": ts + 6}])
        check(v[0]["valid"] is True and v[0]["error"] is None, v[0])
        check(v[0]["event_type"] == "client_token.created" and
              v[0]["sdk_data_class"] == "ClientToken", v[0])
        d = v[0]["data"]
        check(d["id"] == tok["id"] and d["token"] == tok["token"] and
              d["name"] == "signed" and d["status"] == "active" and
              d["revoked_at"] is None, f"{d} vs {tok}")
        for i, what in ((1, "changed body"), (2, "other secret"),
                        (3, "stale ts")):
            check(v[i]["valid"] is False, f"{what} verified: {v[i]}")
        print("webhook: signature verified by the SDK's Verifier; changed "
              "body, other secret and stale ts refused", flush=True)
        check_notifications(env, srv, key, rx, got)
    finally:
        rx.close()


def check_notifications(env, srv, key, rx, got):
    """The SDK's notifications.list/get/replay and notification_logs.list
    on the replica (which projects the notifications topic); the replay it
    asked for is sent once by the next notifier run."""
    want = got.json["notification_id"]
    deadline = time.monotonic() + 30
    while True:  # the replica's follower projects the notifier's records
        r = srv.request("GET", f"/notifications/{want}", key="ntf")
        if r.status == 200 and r.json["data"]["status"] == "delivered":
            break
        check(time.monotonic() < deadline, f"never projected: {r}")
        time.sleep(0.1)
    p = subprocess.run([PY, "notifications_sdk.py"], cwd=SDK_DIR,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
                            "CTKN_API_URL": srv.url,
                            "CTKN_NTF_KEY": srv.keys["ntf"]})
    check(p.returncode == 0, f"notifications_sdk.py: {p.stdout}{p.stderr}")
    out = json.loads(p.stdout.splitlines()[-1])
    check(out["notification_id"] == want, out)
    n = env.ok("notify", "--secret-key-file", key, "--group",
               "g-" + env.topic, *ALLOW_LO,
               db=env.path("notify-db")).json["data"]
    check(n["replayed"] == 1, f"notify after the SDK's replay: {n}")
    sent = [q for q in rx.requests("/py")
            if q.json["notification_id"] == out["replay"]]
    check(len(sent) == 1 and sent[0].ok and
          sent[0].json["event_id"] == got.json["event_id"],
          f"the replay was sent {sent}")
    print("notifications: list/get/replay and notification_logs.list "
          "through the SDK; the replay sent once", flush=True)


def test_paddle_python_sdk():
    prepare()
    env = Env(name="sdkpy")
    srv = lim = None
    try:
        key = deploy_key(env)
        keys = (("writer", "client_token.write,notification_setting.write"),
                ("reader", "client_token.read"),
                ("ntf", "notification_setting.read,"
                        "notification_setting.write"))
        srv = Server(env, name="sdkpy", keys=keys,
                     args=("--secret-key-file", key, *ALLOW_LO))
        lim = Server(env, name="sdkpy-limited",
                     args=("--rate-limit", "1"))
        srv.run_client("python -m unittest",
                       [PY, "-m", "unittest", "-v", "paddle_sdk_test"],
                       cwd=SDK_DIR,
                       env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
                            "CTKN_API_URL_LIMITED": lim.url,
                            "CTKN_API_KEY_LIMITED": lim.keys["reader"]},
                       timeout=300)
        check_webhook(env, srv, key)
        lim.stop()
        srv.stop()
    finally:
        for s in (srv, lim):
            if s is not None and s.alive():
                s.stop(check_exit=False)
        env.close()


if __name__ == "__main__":
    main([test_paddle_python_sdk])
