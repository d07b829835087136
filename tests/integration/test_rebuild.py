#!/usr/bin/env python3
"""ctkn rebuild: a fresh projection built beside the live one and swapped
in atomically, while a follower, writers and readers keep going; and the
way through a store format this build does not know."""
import fcntl
import os
import shutil
import signal
import subprocess
import threading
import time

from harness import BROKERS, CTKN, Env, check, main, run
from receiver import Receiver

SETFORMAT = os.environ["CTKN_SETFORMAT"]


def count(env):
    r = env.ctkn("list", "--status", "active,revoked", "--per-page", "1")
    return r, (r.json["meta"]["pagination"]["estimated_total"]
               if r.rc == 0 else None)


def test_rebuild_under_load_swaps_atomically():
    env = Env(name="rebuild", partitions=3)
    follower = None
    stop = threading.Event()
    problems, seen = [], []
    try:
        ids = [env.ok("create", "--name", f"before {i}").json["data"]["id"]
               for i in range(30)]
        env.ok("revoke", ids[0])
        follower = subprocess.Popen(
            [CTKN, "project", "--follow", "--topic", env.topic,
             "--brokers", BROKERS, "--db", env.db],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

        def reader():
            # A reader must always find a whole projection: never an
            # error, never fewer tokens than it saw before.
            last = 0
            while not stop.is_set():
                r, n = count(env)
                if r.rc != 0:
                    problems.append(f"read failed: {r}")
                elif n < last:
                    problems.append(f"went back from {last} to {n} tokens")
                else:
                    last = n
                    seen.append(n)

        def writer():
            i = 0
            while not stop.is_set():
                r = env.ctkn("create", "--name", f"during {i}")
                if r.rc != 0:
                    problems.append(f"create failed: {r}")
                i += 1

        threads = [threading.Thread(target=reader),
                   threading.Thread(target=writer)]
        for t in threads:
            t.start()
        time.sleep(1)
        r = env.ctkn("rebuild", timeout=120)
        time.sleep(1)
        stop.set()
        for t in threads:
            t.join()
        check(r.rc == 0, f"rebuild failed: {r}")
        check("rebuilt" in r.err, r.err)
        check(not problems, f"during the rebuild: {problems[:5]}")
        check(len(seen) > 3, f"the reader kept reading: {len(seen)}")
        check(os.path.exists(os.path.join(env.db + ".previous", "data.mdb")),
              "the old projection is kept")
        check(not os.path.exists(env.db + ".rebuild"), "no side directory")

        # The follower noticed and goes on with the new projection: a
        # command's read-your-writes needs it (or advances it itself), so
        # check the follower's own progress through a fresh write.
        after = env.ok("create", "--name", "after the swap").json["data"]["id"]
        want = env.fresh_digest()
        deadline = time.monotonic() + 30
        while env.digest() != want and time.monotonic() < deadline:
            time.sleep(0.2)
        check(env.digest() == want, "the live projection caught up")
        env.ok("get", after)
        check(env.ok("get", ids[0]).json["data"]["status"] == "revoked",
              "history survived")
    finally:
        stop.set()
        if follower is not None:
            follower.send_signal(signal.SIGTERM)
            _, err = follower.communicate(timeout=30)
            check(follower.returncode == 0, f"follower exit: {err}")
            check("projection was rebuilt" in err,
                  f"the follower saw the swap: {err[-500:]}")
        env.close()


def test_rebuild_is_the_way_through_a_format_change():
    env = Env(name="rebuild")
    try:
        tid = env.ok("create", "--name", "old format").json["data"]["id"]
        want = env.fresh_digest()
        out = run([SETFORMAT, env.db, "99"])
        check(out.rc == 0, f"setformat: {out}")
        r = env.ctkn("get", tid)
        check(r.rc == 3 and "ctkn rebuild" in r.error["detail"],
              f"an unknown format names the fix: {r}")
        r = env.ctkn("rebuild")
        check(r.rc == 0 and "rebuilding it in this build's format" in r.err,
              f"{r}")
        check(r.json["data"] == want, f"{r.json} != {want}")
        check(env.ok("get", tid).json["data"]["name"] == "old format", "read")
    finally:
        env.close()


def test_rebuild_refusals():
    env = Env(name="rebuild")
    try:
        r = env.ctkn("rebuild")
        check(r.rc == 1 and r.error["code"] == "not_found", f"no db: {r}")
        env.ok("create", "--name", "x")
        with open(env.db + ".rebuild.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            r = env.ctkn("rebuild")
            check(r.rc == 1 and "another rebuild" in r.error["detail"],
                  f"{r}")
        r = run([CTKN, "rebuild", "--topic", env.topic + "-other",
                 "--brokers", BROKERS, "--db", env.db])
        check(r.rc == 1 and "bound to topic" in r.error["detail"], f"{r}")
        # A failed rebuild leaves the live projection as it was.
        check(env.ctkn("digest").rc == 0, "still readable")
        shutil.rmtree(env.db + ".previous", ignore_errors=True)
    finally:
        env.close()


def test_rebuild_through_a_symlink_rebuilds_its_target():
    """A --db that is a symbolic link is rebuilt where it points: the link
    stays a link, its target holds the new projection, and the old one
    is beside the target (renaming the link instead left the target, and
    whatever opened it by its real path, on the old projection)."""
    env = Env(name="rebuild")
    try:
        tid = env.ok("create", "--name", "via a link").json["data"]["id"]
        real = env.path("real")
        os.rename(env.db, real)
        os.symlink(real, env.db)
        ino = os.stat(real).st_ino
        r = env.ctkn("rebuild")
        check(r.rc == 0, f"rebuild: {r}")
        check(os.path.islink(env.db) and os.readlink(env.db) == real,
              "the link was replaced")
        check(os.stat(real).st_ino != ino, "the target was not rebuilt")
        check(os.path.isdir(real + ".previous") and
              not os.path.lexists(env.db + ".previous"),
              "the old projection is not beside the target")
        r = run([CTKN, "get", tid, "--topic", env.topic, "--brokers",
                 BROKERS, "--db", real])
        check(r.rc == 0 and r.json["data"]["name"] == "via a link", f"{r}")
    finally:
        env.close()


def test_rebuild_keeps_destinations_and_delivery_state():
    """Destinations come back from the settings topic; a notifier's
    delivery state, which is in no log, is carried over."""
    env = Env(name="rebuild")
    rx = Receiver()
    try:
        key = env.path("key")
        with open(key, "w") as f:
            f.write(os.urandom(32).hex())
        os.chmod(key, 0o600)
        # The receiver is on loopback: allowed explicitly, as it must be.
        allow = ["--allow-destination-network", "127.0.0.0/8"]
        dest = env.ok("destination", "add", "--url", rx.url("/hook"),
                      "--events", "client_token.created",
                      "--secret-key-file", key, *allow).json["data"]["id"]
        for i in range(3):
            env.ok("create", "--name", f"n{i}")
        env.ok("notify", "--secret-key-file", key, *allow)
        rx.wait_for(3, path="/hook")
        before = env.ok("notification", "list").lines
        check(len(before) == 3, f"three notifications: {before}")

        env.ok("rebuild")
        ds = env.ok("destination", "list").json["data"]
        check([d["id"] for d in ds] == [dest], f"destination kept: {ds}")
        after = env.ok("notification", "list").lines
        check(after == before, f"delivery state kept: {after} != {before}")
        r = env.ok("notify", "--secret-key-file", key, *allow)
        check(r.json["data"]["attempts"] == 0, f"nothing sent again: {r}")
        check(len(rx.requests("/hook")) == 3, "no repeats")
    finally:
        rx.close()
        shutil.rmtree(env.db + ".previous", ignore_errors=True)
        env.close()


if __name__ == "__main__":
    main([test_rebuild_keeps_destinations_and_delivery_state,
          test_rebuild_under_load_swaps_atomically,
          test_rebuild_is_the_way_through_a_format_change,
          test_rebuild_refusals,
          test_rebuild_through_a_symlink_rebuilds_its_target])
