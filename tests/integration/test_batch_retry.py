#!/usr/bin/env python3
"""`ctkn create --batch` is safe to retry (issue #13, item 4), against the
real broker: a projection whose map fills mid-batch, after Kafka has
acknowledged some of the batch's records. Each line says whether it was
acknowledged (exit 3 only for those that were not); every line the full map
stopped names the map size and --map-size; the retry of the same lines with
the same idempotency keys, with a larger map, answers each acknowledged line
with its first token and leaves exactly one `client_token.created` record
per key in the topic."""
import collections
import json
import re

from harness import Env, check, main

LINES = 1600            # more than three chunks of 512
SMALL = "1M"            # the smallest --map-size: about 600 such creates
APPENDED_RE = re.compile(r"(ctkn_[0-9a-z]{26}) is appended \(partition")


def request(i):
    # The name is unique per key, so created records per name in the topic
    # are created records per key.
    return {"name": f"import row {i:04d}", "idempotency_key": f"import-{i}"}


def classify(lines):
    """Each answer line as (kind, token ID or None): applied (data),
    appended (acknowledged, not applied) or refused (not acknowledged)."""
    out = []
    for doc in lines:
        ack = doc["meta"]["acknowledged"]
        if "data" in doc:
            check(ack is True, f"a data line is acknowledged: {doc}")
            out.append(("applied", doc["data"]["id"]))
            continue
        err = doc["error"]
        check(err["code"] == "service_unavailable", doc)
        check(f"map is full (--map-size {SMALL})" in err["detail"] and
              "restart with a larger --map-size" in err["detail"],
              f"the full map, its size and the fix on every line: {doc}")
        if ack:
            m = APPENDED_RE.search(err["detail"])
            check(m is not None, f"an appended line names its token: {doc}")
            out.append(("appended", m.group(1)))
        else:
            out.append(("refused", None))
    return out


def created_per_name(env):
    events = env.ok("tail", "--from-beginning", "--exit-at-end",
                    "--type", "client_token.created", timeout=120).lines
    return collections.Counter(e["data"]["name"] for e in events), events


def test_map_full_mid_batch_then_retry_with_keys():
    env = Env(name="batchretry")
    try:
        body = "".join(json.dumps(request(i)) + "\n" for i in range(LINES))

        # 1. A small map: it fills while the first chunk is applied.
        r = env.ctkn("create", "--batch", "--map-size", SMALL, input=body,
                     timeout=300)
        lines = r.lines
        check(len(lines) == LINES, f"one answer per line: {len(lines)}")
        kinds = classify(lines)
        count = collections.Counter(k for k, _ in kinds)
        print(f"first run: {dict(count)}, exit {r.rc}", flush=True)
        # The map fills while a chunk's acknowledged records are applied
        # (which chunk depends on record sizes): those lines say they are
        # appended, and the chunks after it are refused before appending.
        check(count["appended"] > 0 and count["refused"] > 0,
              f"the failure comes after acknowledgements: {count}")
        # Exit 3 (retry) because some lines were not acknowledged; the
        # acknowledged ones are exactly the records in the topic.
        check(r.rc == 3, f"exit 3 with lines to retry: {r.rc}")
        # (Signed, the log holds checkpoints and keyrings too: its events
        # are what a fresh projection of it applies.)
        ends = sum(env.end_offsets())
        in_log = env.ok("project", db=env.path("count")).json["data"]
        in_log = in_log["applied"]
        check(in_log == count["applied"] + count["appended"],
              f"acknowledged lines {count} vs records in the log {in_log}")
        # Lines are answered in order: the refused ones come after.
        first_refused = [k for k, _ in kinds].index("refused")
        check(all(k == "refused" for k, _ in kinds[first_refused:]),
              "once the map is full before an append, nothing more is "
              "appended")

        # 2. The same lines again, still with the small map. Usually the
        # catch-up fills the map before anything is planned, and every line
        # is refused with nothing appended; but LMDB may reuse pages the
        # first run's readers held, and the retry then gets further before
        # the map fills again. Either way a line answered twice names one
        # token, and step 4 finds one created record per key.
        r2 = env.ctkn("create", "--batch", "--map-size", SMALL, input=body,
                      timeout=300)
        check(r2.rc == 3, f"still full: exit 3, got {r2.rc}")
        kinds2 = classify(r2.lines)
        print("second run:",
              dict(collections.Counter(k for k, _ in kinds2)), flush=True)
        if all(k == "refused" for k, _ in kinds2):
            check(sum(env.end_offsets()) == ends, "the failed retry appended")
        merged = []
        for i, ((k1, t1), (k2, t2)) in enumerate(zip(kinds, kinds2)):
            check(t1 is None or t2 is None or t1 == t2,
                  f"line {i}: the retry answered {t2}, the first run {t1}")
            merged.append((k1, t1) if t1 is not None else (k2, t2))
        kinds = merged

        # 3. A larger map: every line answers, the acknowledged ones with
        # their first tokens.
        r3 = env.ctkn("create", "--batch", "--map-size", "64M", input=body,
                      timeout=300)
        check(r3.rc == 0, f"the retry succeeds: {r3.rc} {r3.err[-500:]}")
        again = r3.lines
        check(len(again) == LINES and
              all("data" in d and d["meta"]["acknowledged"] for d in again),
              "every line created and acknowledged")
        for i, ((kind, tid), doc) in enumerate(zip(kinds, again)):
            check(doc["data"]["name"] == request(i)["name"], doc)
            if tid is not None:
                check(doc["data"]["id"] == tid,
                      f"line {i} ({kind}) answers its first token: "
                      f"{tid} vs {doc['data']['id']}")

        # 4. In the topic: exactly one created record per key.
        per_name, events = created_per_name(env)
        check(len(events) == LINES, f"{len(events)} created records")
        dup = {n: c for n, c in per_name.items() if c != 1}
        check(not dup, f"created records per key other than 1: {dup}")
        check(set(per_name) == {request(i)["name"] for i in range(LINES)},
              "every key has its record")
        check({e["data"]["id"] for e in events} ==
              {d["data"]["id"] for d in again},
              "the tokens answered are the tokens in the log")

        # 5. Once more: a retry after success appends nothing.
        r4 = env.ok("create", "--batch", input=body, timeout=300)
        check([d["data"]["id"] for d in r4.lines] ==
              [d["data"]["id"] for d in again], "the same tokens again")
        check(env.events() == LINES, "nothing more appended")
    finally:
        env.close()


if __name__ == "__main__":
    main([test_map_full_mid_batch_then_retry_with_keys])
