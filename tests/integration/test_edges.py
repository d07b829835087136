"""The CLI at the edges of its files and disk (issue #13, item 5), over the
real broker:

* key and secret files must be regular files of bounded size: /dev/zero, a
  FIFO, a directory or a huge file is refused at once, naming the file and
  the rule (it was read for 23 GB, then the OOM killer);
* a full disk is reported as one, not as "Input/output error". The test
  fills a small tmpfs mounted in a private mount namespace (unshare -m):
  a real ENOSPC from the kernel, through LMDB's write path.
"""
import json
import os
import shutil
import subprocess
import time

from harness import CTKN, BROKERS, Env, check, deploy_key, main, run


def refused_fast(argv, path, words):
    t0 = time.monotonic()
    r = run(argv, timeout=30)
    took = time.monotonic() - t0
    check(r.rc != 0, f"{argv} accepted {path}: {r}")
    errs = [json.loads(l)["error"] for l in r.err.splitlines()
            if l.startswith('{"error"')]
    check(errs, f"{argv}: no error envelope: {r}")
    err = errs[0]
    check(path in err["detail"] and words in err["detail"], err)
    check(took < 5, f"{argv}: {took:.1f}s to refuse {path}")


def test_key_files_must_be_bounded_regular_files():
    env = Env(name="edgekeys")
    try:
        keys = env.path("keys.jsonl")
        r = run([CTKN, "apikey", "create", "--file", keys, "--name", "w",
                 "--permissions", "client_token.read"])
        check(r.rc == 0, r)
        fifo = env.path("fifo")
        os.mkfifo(fifo)
        huge = env.path("huge")
        with open(huge, "wb") as f:
            f.truncate(64 << 20)  # sparse: nothing is written
        serve = [CTKN, "serve", "--listen", "127.0.0.1:1", "--brokers",
                 BROKERS, "--topic", env.topic, "--db", env.path("db")]
        for bad, words in (("/dev/zero", "not a regular file"),
                           (fifo, "not a regular file (a FIFO)"),
                           (env.dir, "not a regular file (a directory)"),
                           (huge, "more than 16777216 bytes")):
            refused_fast(serve + ["--api-keys", bad], bad, words)
            refused_fast(serve + ["--api-keys", keys, "--secret-key-file",
                                  bad], bad,
                         words.replace("16777216", "66"))
            refused_fast(serve + ["--api-keys", keys, "--tls-cert", bad,
                                  "--tls-key", bad], bad,
                         words.replace("16777216", "1048576"))
            refused_fast([CTKN, "apikey", "list", "--file", bad], bad, words)
            # The trust root's public key, for any command that reads.
            refused_fast([CTKN, "status", "--trust-root", bad, "--topic",
                          env.topic, "--brokers", BROKERS, "--db",
                          env.path("db")], bad,
                         words.replace("16777216", "66"))
        # The deployment key for notifications is read the same way.
        key = deploy_key(env)
        refused_fast([CTKN, "destination", "add", "--url",
                      "https://example.com/hook", "--events",
                      "client_token.created", "--secret-key-file",
                      "/dev/zero", "--topic", env.topic, "--brokers",
                      BROKERS, "--db", env.path("db")], "/dev/zero",
                     "not a regular file")
        check(os.path.exists(key), key)
    finally:
        env.close()


def test_a_full_disk_says_so():
    if shutil.which("unshare") is None:
        print("skipped: no unshare(1) to mount a private tmpfs")
        return
    env = Env(name="edgefull")
    try:
        lines = "".join(json.dumps({"name": f"t{i}", "description": "x" * 200})
                        + "\n" for i in range(1500))
        r = env.ctkn("create", "--batch", input=lines, timeout=300)
        check(r.rc == 0, r.err[-2000:])
        mnt = env.path("tiny")
        os.mkdir(mnt)
        db = os.path.join(mnt, "db")
        # A 256 KiB tmpfs in a mount namespace of its own: it vanishes
        # with the process, whatever happens to the test.
        script = ('mount -t tmpfs -o size=256k ctkn-full "$1" || exit 77; '
                  'shift; exec "$@"')
        p = subprocess.run(
            ["unshare", "-m", "sh", "-c", script, "sh", mnt, CTKN, "project",
             "--topic", env.topic, "--brokers", BROKERS, "--db", db],
            capture_output=True, text=True, timeout=300)
        if p.returncode == 77 or "unshare failed" in p.stderr:
            print(f"skipped: cannot mount a tmpfs here ({p.stderr.strip()})")
            return
        check(p.returncode == 3, f"rc={p.returncode} {p.stderr[-1000:]}")
        err = json.loads(p.stderr.splitlines()[0])["error"]
        check(err["code"] == "service_unavailable", err)
        check("no space left on device" in err["detail"], err)
        check(db in err["detail"], err)
        check("Input/output error" not in err["detail"], err)
    finally:
        env.close()


def test_a_write_whose_answer_is_lost_says_it_was_applied():
    """A create whose answer cannot be written (stdout on /dev/full) was
    applied all the same: it exits 4 (appended, do not run again without
    its key), not 0, and says so; the token is there."""
    env = Env(name="edgeans")
    try:
        with open("/dev/full", "w") as full:
            p = subprocess.run(
                [CTKN, "create", "--name", "lost answer", "--topic",
                 env.topic, "--brokers", BROKERS, "--db", env.db],
                stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                env={**os.environ, **env.vars})
        check(p.returncode == 4, f"rc={p.returncode} {p.stderr[-1000:]}")
        err = json.loads(p.stderr.splitlines()[0])["error"]
        check(err["code"] == "service_unavailable", err)
        check("was applied" in err["detail"] and
              "idempotency key" in err["detail"] and
              err["detail"].endswith("a second token"), err)
        toks = env.ok("list").json["data"]
        check([t["name"] for t in toks] == ["lost answer"], toks)
        # Every command: a read's lost answer is exit 3 (retry), another
        # command that changes something exits 4 as a create does.
        keys = env.path("api-keys")
        for argv, rc, says in (
                (["get", toks[0]["id"]], 3, "retry"),
                (["list"], 3, "retry"),
                (["apikey", "create", "--file", keys, "--name", "lost",
                  "--permissions", "client_token.read"], 4, "was applied"),
                # A read subcommand of a command that changes things.
                (["apikey", "list", "--file", keys], 3, "retry"),
                # Commands that make a file or a directory (a retry would
                # find it there).
                (["snapshot", "--out", env.path("snap")], 4, "was applied"),
                (["export", "--out", env.path("arc")], 4, "was applied"),
                (["replay", "--as-of", "2020-01-01T00:00:00Z",
                  "--db", env.path("asof")], 4, "was applied")):
            with open("/dev/full", "w") as full:
                db = [] if "--db" in argv else ["--db", env.db]
                p = subprocess.run(
                    [CTKN, *argv, "--topic", env.topic, "--brokers", BROKERS,
                     *db],
                    stdout=full, stderr=subprocess.PIPE, text=True,
                    timeout=60, env={**os.environ, **env.vars})
            check(p.returncode == rc, f"{argv}: rc={p.returncode} {p.stderr}")
            err = json.loads(p.stderr.splitlines()[0])["error"]
            check(says in err["detail"] and
                  "could not be written to stdout" in err["detail"], err)
        # The key whose secret was lost is there, to revoke.
        r = env.ok("apikey", "list", "--file", keys)
        check("lost" in r.out, r.out)
    finally:
        env.close()


if __name__ == "__main__":
    main([test_key_files_must_be_bounded_regular_files,
          test_a_full_disk_says_so,
          test_a_write_whose_answer_is_lost_says_it_was_applied])
