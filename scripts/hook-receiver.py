#!/usr/bin/env python3
"""hook-receiver - a tiny webhook receiver for the quick start: answers 200
to every POST, prints the event and whether its Paddle-Signature verifies
under $CTKN_HOOK_SECRET (hex HMAC-SHA256 of "<ts>:<raw body>", ts at most
5 s old, as Paddle's SDKs check).

Usage: CTKN_HOOK_SECRET=pdl_ntfset_... scripts/hook-receiver.py PORT
Prints "listening on 127.0.0.1:PORT" first, once it accepts connections.
"""
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["CTKN_HOOK_SECRET"].encode()


def verify(header, body):
    parts = dict(p.split("=", 1) for p in header.split(";") if "=" in p)
    ts, h1 = parts.get("ts", ""), parts.get("h1", "")
    want = hmac.new(SECRET, ts.encode() + b":" + body,
                    hashlib.sha256).hexdigest()
    fresh = ts.isdigit() and time.time() - int(ts) <= 5
    return hmac.compare_digest(want, h1) and fresh


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = verify(self.headers.get("Paddle-Signature", ""), body)
        event = json.loads(body)
        print(f"POST {self.path} {event['event_type']} "
              f"{event['data']['id']} {event['notification_id']} "
              f"signature {'valid' if ok else 'INVALID'}", flush=True)
        self.send_response(200 if ok else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook)
# Bound and listening: connections queue from here on, so whoever waits for
# this line (scripts/quickstart) can send at once.
print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
