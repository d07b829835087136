#!/usr/bin/env python3
"""ctkn tail: the topic as webhook JSON lines, alone and in a consumer
group (at least once, offsets committed after the lines are written)."""
import os
import signal
import subprocess
import time

from harness import (BROKERS, CTKN, KIP848, Env, check, kip848_unsupported,
                     main)


def seed(env, n):
    """n tokens created, the first one revoked; returns their IDs."""
    ids = [env.ok("create", "--name", f"tail {i}").json["data"]["id"]
           for i in range(n)]
    env.ok("revoke", ids[0])
    return ids


def dump(env, *args):
    return env.ok("tail", "--exit-at-end", *args).lines


def test_from_beginning_prints_every_event_as_webhook_json():
    env = Env(name="tail")
    try:
        ids = seed(env, 5)
        lines = dump(env, "--from-beginning")
        check(len(lines) == 6, f"6 events, got {len(lines)}")
        for ev in lines:
            check(list(ev) == ["event_id", "event_type", "occurred_at",
                               "notification_id", "data"],
                  f"webhook envelope keys: {list(ev)}")
            check(ev["event_id"].startswith("evt_"), ev["event_id"])
        created = [e["data"]["id"] for e in lines
                   if e["event_type"] == "client_token.created"]
        check(sorted(created) == sorted(ids), "every create is there")
        revoked = [e for e in lines if e["event_type"] == "client_token.revoked"]
        check(len(revoked) == 1 and revoked[0]["data"]["id"] == ids[0] and
              revoked[0]["data"]["status"] == "revoked", f"{revoked}")
        # Per token, the log's order: the revoke follows the create.
        order = [e["event_type"] for e in lines if e["data"]["id"] == ids[0]]
        check(order == ["client_token.created", "client_token.revoked"], order)
        # The same bytes as the token's history from the projection.
        env.ok("project")
        hist = env.ok("history", ids[0]).lines
        check(hist == [e for e in lines if e["data"]["id"] == ids[0]],
              "tail and history agree")
    finally:
        env.close()


def test_type_filter_and_default_start_at_the_end():
    env = Env(name="tail")
    try:
        seed(env, 3)
        only = dump(env, "--from-beginning", "--type", "client_token.revoked")
        check(len(only) == 1 and
              only[0]["event_type"] == "client_token.revoked", f"{only}")
        both = dump(env, "--from-beginning", "--type", "client_token.revoked",
                    "--type", "client_token.created")
        check(len(both) == 4, f"repeatable --type: {len(both)}")
        # Without a start, only events produced after the tail began.
        check(dump(env) == [], "from the end: nothing old")
        r = env.ctkn("tail", "--type", "client_token.deleted")
        check(r.rc == 1 and r.error["errors"][0]["field"] == "type", f"{r}")
        r = env.ctkn("tail", "--from", "yesterday")
        check(r.rc == 1 and r.error["errors"][0]["field"] == "from", f"{r}")
        r = env.ctkn("tail", "--from", "2020-01-01T00:00:00Z",
                     "--from-beginning")
        check(r.rc == 2, f"--from with --from-beginning: {r}")
        r = env.ctkn("tail", "--group", "g", "--exit-at-end")
        check(r.rc == 2, f"--group with --exit-at-end: {r}")
    finally:
        env.close()


def test_from_an_instant():
    env = Env(name="tail")
    try:
        seed(env, 2)
        time.sleep(1.1)
        cut = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        time.sleep(0.1)
        later = env.ok("create", "--name", "after the cut").json["data"]["id"]
        lines = dump(env, "--from", cut)
        check([e["data"]["id"] for e in lines] == [later],
              f"only the event after {cut}: {lines}")
        check(len(dump(env, "--from", "2000-01-01T00:00:00Z")) == 4,
              "from long ago: everything")
    finally:
        env.close()


def test_poison_is_passed_over_with_its_coordinates():
    env = Env(name="tail", partitions=1)
    try:
        seed(env, 1)
        p, o = env.raw(0, "junk", b"\xff\x00garbage", "client_token.created",
                       "1")
        env.ok("create", "--name", "after the poison")
        r = env.ok("tail", "--from-beginning", "--exit-at-end")
        check(len(r.lines) == 3, f"3 good events around the poison: {r}")
        check(f"partition {p} offset {o} passed over" in r.err, r.err)
        # A newer schema stops the tail rather than skip what it can't read.
        env.raw(0, "k", b"\x0a\x01x", "client_token.created", "99")
        r = env.ctkn("tail", "--from-beginning", "--exit-at-end")
        import json
        last = json.loads(r.err.splitlines()[-1])["error"]
        check(r.rc == 3 and "schema version 99" in last["detail"], f"{r}")
        check(len(r.lines) == 3, "what came before it is written")
    finally:
        env.close()


# A SIGKILLed member's partitions move after this long. Under KIP-848 the
# session timeout is the broker's (deploy/kafka sets 6 s too).
CLASSIC = ["-X", "session.timeout.ms=6000"]


def start_member(env, group, out, proto=CLASSIC):
    return subprocess.Popen(
        [CTKN, "tail", "--group", group, "--from-beginning",
         "--topic", env.topic, "--brokers", BROKERS, *proto],
        stdout=open(out, "w"), stderr=subprocess.DEVNULL)


def read_ids(path):
    import json
    with open(path) as f:
        return [json.loads(l)["event_id"] for l in f if l.strip()]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_group_members_share_and_resume_at_least_once():
    members_share_and_resume(CLASSIC)


def test_kip848_group_members_share_and_resume_at_least_once():
    """The same under KIP-848 (-X group.protocol=consumer): incremental
    assignments, which an eager assign would leave unread (exit 0, having
    printed nothing)."""
    why = kip848_unsupported()
    if why:
        print(f"  skipped: {why}")
        return
    members_share_and_resume(KIP848)


def members_share_and_resume(proto):
    env = Env(name="tail", partitions=4)
    try:
        seed(env, 4)  # 5 events before the group exists
        a, b = env.path("a.jsonl"), env.path("b.jsonl")
        pa = start_member(env, "g", a, proto)
        pb = start_member(env, "g", b, proto)
        try:
            # Events keep coming until both members have written some: the
            # second member's share arrives with a rebalance, which can
            # take seconds (a classic group's other member rejoins on its
            # next heartbeat).
            made, deadline = 5, time.monotonic() + 60
            while made < 21 or not (read_ids(a) and read_ids(b)):
                check(time.monotonic() < deadline,
                      f"both members got a share: {len(read_ids(a))} and "
                      f"{len(read_ids(b))} of {made}")
                env.ok("create", "--name", f"during {made}")
                made += 1
                if made >= 21:
                    time.sleep(0.2)
            wait_for(lambda: len(read_ids(a)) + len(read_ids(b)) >= made, 60,
                     "the members to write every event")
            ia, ib = read_ids(a), read_ids(b)
            check(len(ia) > 0 and len(ib) > 0,
                  f"both members got a share: {len(ia)} and {len(ib)}")
            check(not set(ia) & set(ib), "no event went to both members")
            # SIGKILL one member: its partitions move to the other, which
            # resumes after the last commit; nothing is skipped.
            pa.send_signal(signal.SIGKILL)
            pa.wait()
            for i in range(8):
                env.ok("create", "--name", f"after the kill {i}")
            every = [e["event_id"] for e in dump(env, "--from-beginning")]
            wait_for(lambda: set(every) <= set(read_ids(a)) | set(read_ids(b)),
                     90, "the survivor to take over")
        finally:
            for p in (pa, pb):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    p.wait(timeout=30)
        check(pb.returncode == 0, f"SIGTERM ends a member cleanly: "
              f"{pb.returncode}")
        # The group committed everything it wrote: a new member of the
        # same group has nothing to say.
        c = env.path("c.jsonl")
        pc = start_member(env, "g", c, proto)
        time.sleep(8)
        pc.send_signal(signal.SIGTERM)
        pc.wait(timeout=30)
        check(read_ids(c) == [], f"resumed after the commits: {read_ids(c)}")
        # Another group starts afresh.
        d = env.path("d.jsonl")
        pd = start_member(env, "other", d, proto)
        wait_for(lambda: len(read_ids(d)) == len(every), 60, "group 'other'")
        pd.send_signal(signal.SIGTERM)
        pd.wait(timeout=30)
    finally:
        env.close()


if __name__ == "__main__":
    main([test_from_beginning_prints_every_event_as_webhook_json,
          test_type_filter_and_default_start_at_the_end,
          test_from_an_instant,
          test_poison_is_passed_over_with_its_coordinates,
          test_group_members_share_and_resume_at_least_once,
          test_kip848_group_members_share_and_resume_at_least_once])
