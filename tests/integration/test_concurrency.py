"""Concurrent writers and a projector killed at random points."""
import os
import random
import signal
import subprocess
import threading
import time

from harness import BROKERS, CTKN, Env, add_partitions, check, main


def test_concurrent_writers_exactly_one_wins():
    env = Env(name="race", partitions=2)
    try:
        tid = env.ok("create", "--name", "contested").json["data"]["id"]
        rounds, conflicts, both = 12, 0, 0
        expected_version = 1
        for i in range(rounds):
            barrier = threading.Barrier(2)
            results = {}

            def writer(tag):
                barrier.wait()
                # Each writer has its own replica, like two servers.
                results[tag] = env.ctkn("update", tid, "--name",
                                        f"{tag}-{i}", db=env.path(tag))

            ts = [threading.Thread(target=writer, args=(t,))
                  for t in ("a", "b")]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            rcs = sorted(r.rc for r in results.values())
            check(rcs in ([0, 0], [0, 1]), f"round {i}: {results}")
            if rcs == [0, 1]:
                loser = [r for r in results.values() if r.rc == 1][0]
                check(loser.error["code"] == "conflict", loser)
                conflicts += 1
                expected_version += 1
            else:
                both += 1  # they did not overlap: applied one after another
                expected_version += 2
        check(conflicts > 0, "no round raced; the test proved nothing")
        env.ok("project")  # the test's own replica has seen none of it
        hist = env.ok("history", tid).lines
        check(len(hist) == expected_version,
              f"history has {len(hist)} events, want {expected_version}")
        winners = [h["data"]["name"] for h in hist[1:]]
        check(len(set(winners)) == len(winners), winners)
        # Every replica agrees.
        d = env.fresh_digest()
        for tag in ("a", "b"):
            env.ok("project", db=env.path(tag))
            check(env.digest(env.path(tag)) == d, f"replica {tag} diverged")
        print(f"   {conflicts} races with a conflict, {both} serialised")
    finally:
        env.close()


def test_projector_sigkilled_repeatedly_converges():
    env = Env(name="kill", partitions=3)
    try:
        stop = threading.Event()
        made, errors = [], []

        def writer():
            n = 0
            try:
                while not stop.is_set():
                    r = env.ok("create", "--name", f"w{n}",
                               db=env.path("writer"))
                    tid = r.json["data"]["id"]
                    made.append(tid)
                    if n % 3 == 0:
                        env.ok("update", tid, "--description", f"d{n}",
                               db=env.path("writer"))
                    if n % 5 == 0:
                        env.ok("revoke", tid, db=env.path("writer"))
                    n += 1
            except Exception as e:  # surfaced by the main thread
                errors.append(e)

        w = threading.Thread(target=writer)
        w.start()
        db = env.path("victim")
        kills = 0
        try:
            for _ in range(6):
                p = subprocess.Popen(
                    [CTKN, "project", "--follow", "--topic", env.topic,
                     "--brokers", BROKERS, "--db", db],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(random.uniform(0.3, 1.5))
                p.send_signal(signal.SIGKILL)
                p.wait()
                kills += 1
        finally:
            stop.set()
            w.join()
        check(not errors, f"writer failed: {errors}")
        check(len(made) > 5, f"writer made only {len(made)} tokens")
        env.ok("project", db=db)
        want = env.fresh_digest()
        check(env.digest(db) == want, "killed projector diverged")
        env.ok("project", db=env.path("writer"))
        check(env.digest(env.path("writer")) == want, "writer diverged")
        check(want["tokens"] == len(made), (want, len(made)))
        print(f"   {kills} kills, {len(made)} tokens")
    finally:
        env.close()


def test_follow_exits_cleanly_on_sigterm():
    env = Env(name="term", partitions=1)
    try:
        p = subprocess.Popen(
            [CTKN, "project", "--follow", "--topic", env.topic,
             "--brokers", BROKERS, "--db", env.db],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        tid = env.ok("create", "--name", "seen by follower",
                     db=env.path("w")).json["data"]["id"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = env.ctkn("get", tid)
            if r.rc == 0:
                break
            time.sleep(0.1)
        check(r.rc == 0, f"follower never applied the create: {r}")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=15)
        check(p.returncode == 0, f"exit {p.returncode}: {err}")
        check('"applied":1' in out, out)
    finally:
        env.close()


def test_follower_picks_up_added_partitions():
    env = Env(name="grow", partitions=1)
    try:
        p = subprocess.Popen(
            [CTKN, "project", "--follow", "--topic", env.topic,
             "--brokers", BROKERS, "--db", env.db],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)
        add_partitions(env.topic, 4)
        # Writers learn the new count on their next command; creates spread
        # over all four partitions.
        ids = [env.ok("create", "--name", f"g{i}",
                      db=env.path("w")).json["data"]["id"] for i in range(12)]
        st = env.ok("status", db=env.path("w")).json["data"]["partitions"]
        check(len(st) == 4, st)
        check(any(x["log_end"] > 0 for x in st[1:]),
              f"no create landed on a new partition: {st}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(env.ctkn("get", i).rc == 0 for i in ids):
                break
            time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=15)
        check(p.returncode == 0, err)
        missing = [i for i in ids if env.ctkn("get", i).rc != 0]
        check(not missing, f"follower missed {missing}: {err}")
        check("reassigning" in err, err)
        check(env.digest() == env.fresh_digest(), "digest differs")
    finally:
        env.close()


def test_snapshot_of_a_live_projection_seeds_a_replica():
    env = Env(name="snap", partitions=3)
    try:
        p = subprocess.Popen(
            [CTKN, "project", "--follow", "--topic", env.topic,
             "--brokers", BROKERS, "--db", env.db],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set():
                env.ok("create", "--name", f"s{i}", db=env.path("w"))
                i += 1

        w = threading.Thread(target=writer)
        w.start()
        time.sleep(1.5)
        snap = env.ok("snapshot", "--out", env.path("snap")).json["data"]
        time.sleep(1.0)
        stop.set()
        w.join()
        p.terminate()
        p.wait(timeout=15)
        check(snap["tokens"] > 0, snap)
        # The copy is exactly as its digest says, and a replica started from
        # it catches up from its offsets to the same state as a full replay.
        check(env.digest(env.path("snap")) == snap, "snapshot digest differs")
        env.ok("project", db=env.path("snap"))
        check(env.digest(env.path("snap")) == env.fresh_digest(),
              "replica from the snapshot diverged")
        r = env.ctkn("snapshot", "--out", env.path("snap"))
        check(r.rc == 1 and r.error["code"] == "conflict", r)
    finally:
        env.close()


if __name__ == "__main__":
    main([test_concurrent_writers_exactly_one_wins,
          test_projector_sigkilled_repeatedly_converges,
          test_follow_exits_cleanly_on_sigterm,
          test_follower_picks_up_added_partitions,
          test_snapshot_of_a_live_projection_seeds_a_replica])
