#!/usr/bin/env python3
"""Paddle's Go SDK (github.com/PaddleHQ/paddle-go-sdk/v4, pinned in
tests/integration/sdk-go/go.mod and go.sum) against `ctkn serve`: create,
get, list over every page, revoke, and the *paddleerr.Error values it
surfaces (sdk-go/client_tokens_test.go), and the events API: ListEvents
over every page and by a repeated event_type, ListEventTypes
(sdk-go/events_test.go); run with `go test`.

The Go module and build caches are .cache/go/ (git-ignored): the first run
downloads the SDK through the Go module proxy, later runs build offline.
Without a Go toolchain (`go` on PATH or /usr/local/go/bin) the test is
skipped (exit 77, ctest's SKIP_RETURN_CODE for it), not failed.
"""
import os
import shutil
import subprocess
import sys

from harness import Env, Server, cache_dir, check, main

SDK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk-go")
SKIP = 77


def find_go():
    go = shutil.which("go")
    if go is None and os.access("/usr/local/go/bin/go", os.X_OK):
        go = "/usr/local/go/bin/go"
    return go


def go_env():
    return {
        **os.environ,
        "GOMODCACHE": cache_dir("go", "mod"),
        "GOCACHE": cache_dir("go", "build"),
        "GOPATH": cache_dir("go", "path"),
        # Never edit go.mod or go.sum; keep the module cache deletable.
        "GOFLAGS": "-mod=readonly -modcacherw",
        # The go.mod's go line is old enough for any installed toolchain:
        # never download another one.
        "GOTOOLCHAIN": "local",
        "GOTELEMETRY": "off",
        "CGO_ENABLED": "0",
    }


def test_paddle_go_sdk():
    go = find_go()
    env = Env(name="sdkgo")
    srv = None
    try:
        srv = Server(env, name="sdkgo")
        srv.run_client("go test", [go, "test", "-count=1", "-v", "./..."],
                       cwd=SDK_DIR, env=go_env())
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


if __name__ == "__main__":
    if find_go() is None:
        print("SKIP: no Go toolchain (go on PATH or /usr/local/go/bin/go); "
              "install Go >= 1.23 to run Paddle's Go SDK against ctkn serve",
              flush=True)
        sys.exit(SKIP)
    main([test_paddle_go_sdk])
