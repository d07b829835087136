"""A long catch-up (two threads, unsynced commits, one flush) builds the
same projection as short ones, poison and a paused partition included; a
system crash in the middle of one is detected, a dead process is not."""
import json
import os

from harness import check, main, Env, partition_for
from test_poison import event_bytes

# More than the pipelined catch-up's threshold (2 x 8192 records behind).
CREATES = 24000


def batch(env, first, n):
    lines = "".join(json.dumps({"name": f"bulk {i}"}) + "\n"
                    for i in range(first, first + n))
    r = env.ctkn("create", "--batch", timeout=300, input=lines)
    check(r.rc == 0, f"create --batch failed: {r.rc} {r.err[-500:]}")
    return [json.loads(l)["data"] for l in r.out.splitlines()]


def markers(db):
    return [f for f in os.listdir(db) if f.startswith("unsynced.")]


def test_long_catch_up_matches_short_ones():
    env = Env(name="catchup", partitions=3)
    try:
        made = batch(env, 0, CREATES // 2)
        # Poison and an update between the halves, a newer schema at the end
        # of partition 2: the long catch-up must quarantine, reject and
        # pause exactly as the commands' short catch-ups did.
        env.raw(0, "k1", b"\xff\xfe garbage", "client_token.created", "1")
        env.raw(1, "wrong-key", event_bytes("client_token.created"),
                "client_token.created", "1")
        env.ok("revoke", made[7]["id"])
        env.ok("update", made[8]["id"], "--name", "renamed")
        batch(env, CREATES // 2, CREATES // 2)
        env.raw(2, "future", b"\x0a\x01x", "client_token.created", "99")
        env.ok("project")  # the commands' projection, caught up in steps

        fresh = env.path("fresh")
        r = env.ok("project", db=fresh, timeout=300)
        stats = r.json["data"]
        check(stats["quarantined"] == 2 and stats["paused"] == 1, stats)
        check(stats["applied"] == CREATES + 2, stats)
        check(env.digest(fresh) == env.digest(), "digest differs")
        check(markers(fresh) == [], f"marker left behind: {markers(fresh)}")
        q = env.ok("quarantine", db=fresh).lines
        check(len(q) == 2, q)
        # Reads of partition 2's tokens fail closed behind the pause, the
        # others' are answered; a list that accepts stale answers shows
        # the update.
        on = {}
        for t in made:
            on.setdefault(partition_for(t["id"], 3), t)
        r = env.ctkn("get", on[2]["id"], db=fresh)
        check(r.rc == 3 and "paused" in r.err, r)
        r = env.ctkn("get", on[0]["id"], db=fresh)
        check(r.rc == 0, r)
        page = env.ok("list", "--stale-ok", "--per-page", "200",
                      "--order-by", "id[ASC]",
                      db=fresh).json
        got = [t for t in page["data"] if t["id"] == made[8]["id"]]
        check(got and got[0]["name"] == "renamed" and page["meta"]["stale"],
              page["meta"])
    finally:
        env.close()


def test_marker_of_another_boot_refuses_the_projection():
    env = Env(name="marker", partitions=2)
    try:
        env.ok("create", "--name", "x")
        env.ok("project")  # the create's checkpoint, after its read
        before = env.digest()
        # A catch-up that died with the system: another boot's marker.
        path = os.path.join(env.db, "unsynced.1")
        with open(path, "w") as f:
            f.write("00000000-0000-0000-0000-000000000000")
        r = env.ctkn("get", "ctkn_01jyq3v5k8q9r0s1t2v3w4x5y8")
        check(r.rc != 0 and "system went down" in r.err, r)
        r = env.ctkn("project")
        check(r.rc != 0 and "system went down" in r.err, r)
        # Only the process died (same boot): flushed and forgotten.
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        with open(path, "w") as f:
            f.write(boot)
        env.ok("project")
        check(markers(env.db) == [], markers(env.db))
        check(env.digest() == before, "digest changed")
    finally:
        env.close()


if __name__ == "__main__":
    main([test_long_catch_up_matches_short_ones,
          test_marker_of_another_boot_refuses_the_projection])
