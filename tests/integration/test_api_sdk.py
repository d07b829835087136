#!/usr/bin/env python3
"""Paddle's Node.js SDK (@paddle/paddle-node-sdk, pinned in
tests/integration/sdk/package-lock.json) against `ctkn serve`: create, get,
list over every page, update, revoke, and the ApiErrors it surfaces
(sdk/client-tokens.test.mjs), the events API (sdk/events.test.mjs: events.list
over every page and by type, eventTypes.list), and the notification settings' create, list,
get, update and delete (sdk/notification-settings.test.mjs), run with
`node --test`.

The SDK is installed with `npm ci` into tests/integration/sdk/node_modules
(git-ignored), again only when package-lock.json changes; npm's download
cache is .cache/npm.
"""
import hashlib
import os
import shutil
import subprocess

from harness import Env, Server, cache_dir, check, deploy_key, main

SDK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk")


def npm_ci():
    with open(os.path.join(SDK_DIR, "package-lock.json"), "rb") as f:
        want = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(SDK_DIR, "node_modules", ".ctkn-lock-sha256")
    try:
        with open(stamp) as f:
            if f.read().strip() == want:
                return
    except OSError:
        pass
    npm = shutil.which("npm")
    check(npm and shutil.which("node"),
          "node and npm are needed (scripts/install-deps installs them)")
    p = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts",
         "--cache", cache_dir("npm")],
        cwd=SDK_DIR, capture_output=True, text=True, timeout=600)
    check(p.returncode == 0, f"npm ci failed:\n{p.stdout}\n{p.stderr}")
    with open(stamp, "w") as f:
        f.write(want + "\n")


def test_paddle_node_sdk():
    npm_ci()
    env = Env(name="sdk")
    srv = None
    try:
        # The writer may also write notification settings (and the server
        # has the deployment key to create them); the reader has
        # client_token.read alone.
        srv = Server(env, name="sdk",
                     keys=(("writer", "client_token.write,"
                                      "notification_setting.write"),
                           ("reader", "client_token.read")),
                     args=("--secret-key-file", deploy_key(env)))
        srv.run_client("node --test",
                       ["node", "--test", "--test-reporter=spec",
                        "client-tokens.test.mjs",
                        "notification-settings.test.mjs",
                        "events.test.mjs"],
                       cwd=SDK_DIR, env={**os.environ, "NO_COLOR": "1"},
                       timeout=480)
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


if __name__ == "__main__":
    main([test_paddle_node_sdk])
