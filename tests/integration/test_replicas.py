"""Reader replicas: three followers of one topic, each with its own
projection, while a writer streams commands; one is stopped with SIGTERM and
another SIGKILLed mid-way, both restarted. Once writes stop, every replica
reaches the digest of a fresh catch-up of the whole log."""
import json
import os
import signal
import subprocess
import threading
import time

from harness import BROKERS, CTKN, Env, check, main

ROUNDS = 10      # writer rounds
BATCH = 60       # creates per `create --batch` in a round
SINGLES = 4      # single `create` commands per round
UPDATES = 20     # single `update` commands per round
REVOKES = 10     # single `revoke` commands per round
CONVERGE_S = 30  # bound on the replicas reaching the fresh digest


class Follower:
    """`ctkn project --follow` on its own projection directory; stdout and
    stderr go to files (a pipe nobody reads could fill up)."""

    def __init__(self, env, name):
        self.env, self.name = env, name
        self.db = env.path(name)
        self.runs = 0
        self.proc = None

    def start(self):
        self.runs += 1
        base = self.env.path(f"{self.name}.{self.runs}")
        self.out_path, self.err_path = base + ".out", base + ".err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [CTKN, "project", "--follow", "--topic", self.env.topic,
                 "--brokers", BROKERS, "--db", self.db],
                stdout=out, stderr=err)

    def stop(self, sig):
        """Signal it and wait; returns (exit code, stdout, stderr)."""
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=20)
        self.proc = None
        with open(self.out_path) as o, open(self.err_path) as e:
            return rc, o.read(), e.read()

    def kill_if_running(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_three_replicas_with_restarts_converge():
    env = Env(name="replicas", partitions=3)
    followers = [Follower(env, f"replica{i}") for i in range(3)]
    wdb = env.path("writer")
    stop_error = []
    made, revoked = [], set()
    progress = threading.Condition()
    rounds_done = [0]
    t0 = time.monotonic()
    try:
        for f in followers:
            f.start()

        # Written before any restart: every replica must show it at the end.
        sentinel = env.ok("create", "--name", "before the restarts",
                          "--description", "sentinel",
                          db=wdb).json["data"]
        made.append(sentinel["id"])
        early_revoked = env.ok("create", "--name", "revoked early",
                               db=wdb).json["data"]
        made.append(early_revoked["id"])
        env.ok("revoke", early_revoked["id"], db=wdb)
        revoked.add(early_revoked["id"])

        def writer():
            try:
                for r in range(ROUNDS):
                    body = "".join(
                        json.dumps({"name": f"r{r} b{i}",
                                    "description": f"batch {r}/{i}"}) + "\n"
                        for i in range(BATCH))
                    out = env.ok("create", "--batch", input=body,
                                 db=wdb).lines
                    ids = [d["data"]["id"] for d in out]
                    check(len(ids) == BATCH, out)
                    for i in range(SINGLES):
                        ids.append(env.ok("create", "--name", f"r{r} s{i}",
                                          db=wdb).json["data"]["id"])
                    made.extend(ids)
                    for i in range(UPDATES):
                        args = ["update", ids[i], "--name", f"r{r} u{i}"]
                        if i % 3 == 0:
                            args.append("--no-description")
                        env.ok(*args, db=wdb)
                    # Revokes go through replica2's projection, which its
                    # follower advances at the same time (LMDB serialises
                    # the two; each skips what the other applied).
                    for i in range(REVOKES):
                        env.ok("revoke", ids[UPDATES + i],
                               db=followers[2].db)
                        revoked.add(ids[UPDATES + i])
                    with progress:
                        rounds_done[0] = r + 1
                        progress.notify_all()
            except Exception as e:  # surfaced by the main thread
                stop_error.append(e)
                with progress:
                    rounds_done[0] = ROUNDS
                    progress.notify_all()

        def wait_round(n):
            with progress:
                ok = progress.wait_for(lambda: rounds_done[0] >= n,
                                       timeout=60)
            check(ok, f"writer stuck before round {n}")

        w = threading.Thread(target=writer)
        w.start()
        try:
            # SIGTERM replica0 mid-stream: it finishes its batch, exits 0,
            # and a restart resumes from its stored offsets.
            wait_round(3)
            rc, out, err = followers[0].stop(signal.SIGTERM)
            check(rc == 0, f"replica0 exit {rc} on SIGTERM: {err}")
            first_run = json.loads(out)["data"]
            wait_round(4)
            followers[0].start()
            # SIGKILL replica1: no clean exit; the restart resumes from the
            # last committed batch.
            wait_round(6)
            rc, _, _ = followers[1].stop(signal.SIGKILL)
            check(rc == -signal.SIGKILL, f"replica1 exit {rc} on SIGKILL")
            wait_round(7)
            followers[1].start()
        finally:
            w.join()
        check(not stop_error, f"writer failed: {stop_error}")
        writes_s = time.monotonic() - t0

        # Writes have stopped: the log is fixed, so a fresh catch-up is the
        # reference, and every replica must reach it within the bound.
        # The events among the records (signed, the log holds checkpoints
        # and keyrings too): what a fresh projection of it applies.
        end = env.ok("project", db=env.path("count")).json["data"]["applied"]
        want = env.fresh_digest()
        check(want["tokens"] == len(made), (want, len(made)))
        deadline = time.monotonic() + CONVERGE_S
        got = {}
        while time.monotonic() < deadline:
            got = {f.name: env.digest(f.db) for f in followers}
            if all(d == want for d in got.values()):
                break
            time.sleep(0.25)
        diverged = {n: d for n, d in got.items() if d != want}
        check(not diverged,
              f"replicas not at the fresh digest after {CONVERGE_S}s: "
              f"{diverged}, want {want}")
        converged_s = time.monotonic() - t0 - writes_s

        for f in followers:
            s = env.ok("get", sentinel["id"], db=f.db).json["data"]
            check(s == sentinel, f"{f.name}: {s} != {sentinel}")
            v = env.ctkn("verify", sentinel["token"], db=f.db)
            check(v.rc == 0, f"{f.name}: sentinel not active: {v}")
            v = env.ctkn("verify", early_revoked["token"], db=f.db)
            check(v.rc == 1 and v.json["data"]["status"] == "revoked",
                  f"{f.name}: early revoke not seen: {v}")
            # (estimated_total counts every token whatever the status
            # filter, so count the page: fewer than 200 are revoked.)
            lst = env.ok("list", "--status", "revoked", "--per-page", "200",
                         db=f.db).json
            check(not lst["meta"]["pagination"]["has_more"], lst["meta"])
            got_revoked = {t["id"] for t in lst["data"]}
            check(got_revoked == revoked,
                  f"{f.name}: revoked {len(got_revoked)}, want "
                  f"{len(revoked)}")

        # Every follower stops cleanly. replica0's two runs together applied
        # every record exactly once (nothing else writes its projection).
        stats = {}
        for f in followers:
            rc, out, err = f.stop(signal.SIGTERM)
            check(rc == 0, f"{f.name} exit {rc}: {err}")
            stats[f.name] = json.loads(out)["data"]
        second_run = stats["replica0"]
        check(first_run["applied"] > 0 and second_run["applied"] > 0,
              (first_run, second_run))
        check(first_run["applied"] + second_run["applied"] == end,
              f"replica0 applied {first_run} then {second_run}, log has "
              f"{end} events")
        for s in (first_run, *stats.values()):
            check(s["rejected"] == 0 and s["quarantined"] == 0, stats)
        print(f"   {end} events, {len(made)} tokens; writes {writes_s:.1f}s, "
              f"replicas converged {converged_s:.1f}s later")
    finally:
        for f in followers:
            f.kill_if_running()
        env.close()


if __name__ == "__main__":
    main([test_three_replicas_with_restarts_converge])
