"""Verifies webhook deliveries with Paddle's own Python SDK
(paddle-python-sdk, pinned in tests/integration/sdk-python-requirements.txt):
paddle_billing.Notifications.Verifier, then the body parsed as the SDK's
Event.

    python verify_webhooks.py < requests.jsonl

stdin: JSON lines {"secret", "signature" (the Paddle-Signature header),
"body" (the raw body, as a string), "now" (unix seconds: the clock the
Verifier reads for that line, so a signature can be judged as of the
request's arrival)}.
stdout: one JSON line per input line, in order:
    {"valid": Verifier().verify(...), "error": null | "<exception>",
     "event_type", "event_id", "sdk_data_class", "data": {...} | null}
("data" is the SDK entity's fields, datetimes as ISO strings; only for a
valid line.)

What SDK 1.16.1's Verifier checks (Notifications/Verifier.py,
PaddleSignature.py): the header is split on ";" and each part once on "=";
"ts" and "h1" (several h1 allowed) are kept, and any other key raises
ValueError. Unless maximum_variance is 0 (default 5), the line is refused
when now > ts + 5 or ts - 5 > now. Then h1 must equal
hex(HMAC-SHA256(secret, f"{ts}:{body}")) (compare_digest). TEST_MODE in
the environment turns the time check off; this script removes it.
"""
import dataclasses
import json
import os
import sys
import types
from datetime import datetime

from paddle_billing.Entities.Event import Event
from paddle_billing.Notifications import Secret, Verifier

# The module, not the class of the same name its package exports: the
# Verifier reads its clock as this module's `time`.
verifier_module = sys.modules["paddle_billing.Notifications.Verifier"]

os.environ.pop("TEST_MODE", None)


def plain(v):
    if isinstance(v, datetime):
        return v.isoformat()
    if hasattr(v, "value") and hasattr(v, "is_known"):  # PaddleStrEnum
        return v.value if v.is_known() else f"unknown:{v.value}"
    return v


def verify(req):
    out = {"valid": False, "error": None, "event_type": None,
           "event_id": None, "sdk_data_class": None, "data": None}
    request = types.SimpleNamespace(
        headers={"Paddle-Signature": req["signature"]},
        body=req["body"].encode("utf-8"))
    verifier_module.time = lambda: float(req["now"])
    try:
        out["valid"] = Verifier().verify(request, Secret(req["secret"]))
    except Exception as e:  # noqa: BLE001 - the verdict is the output
        out["error"] = f"{type(e).__name__}: {e}"
    if out["valid"]:
        ev = Event.from_dict(json.loads(req["body"]))
        out["event_type"] = plain(ev.event_type)
        out["event_id"] = ev.event_id
        out["sdk_data_class"] = type(ev.data).__name__
        if dataclasses.is_dataclass(ev.data):
            out["data"] = {f.name: plain(getattr(ev.data, f.name))
                           for f in dataclasses.fields(ev.data)}
    return out


def main():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(verify(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
