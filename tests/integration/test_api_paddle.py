#!/usr/bin/env python3
"""`ctkn serve` against Paddle's own published contract
(tests/fixtures/paddle-openapi/paddle-subset.yaml, Paddle's
v1/openapi.yaml cut to the operations ctkn implements; its hash pinned in
paddle_contract.py, the file never edited).

1. schemathesis (the pinned venv of test_api_contract.py) runs every
   phase with every check, a fixed seed and bounded examples against
   Paddle's description, transformed at test time in one way only: its
   event-name enumeration, which predates client_token.*, is open. Each
   failure is attributed to a deviation that paddle_contract.DEVIATIONS
   lists by name with its reason (paddle_hooks.py); one that none
   explains fails the run. The counts per deviation are printed.
2. Paddle's documented request examples are sent, and each answer is
   checked against Paddle's response schema for its status (and the
   entity's members against Paddle's example entity's).
3. docs/openapi.yaml describes Paddle's operations as Paddle does where
   ctkn follows it, and marks every operation of its own as an extension.
4. Each listed deviation has a probe here that shows it still occurs: a
   deviation that no longer occurs fails the test, as it should then
   leave the list (and README.md's compatibility section, which must
   name the same list, in the same order).

The run takes about a minute. CTKN_PADDLE_SEED and
CTKN_PADDLE_EXAMPLES override the seed and the examples per operation.

It re-executes itself in the schemathesis venv, for PyYAML and
jsonschema_rs.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _in_venv():
    """Re-run this script under the venv's python unless already there."""
    if os.environ.get("CTKN_PADDLE_IN_VENV") == "1":
        return
    sys.path.insert(0, HERE)
    from test_api_contract import schemathesis
    exe = schemathesis()
    py = os.path.join(os.path.dirname(exe), "python")
    os.environ["CTKN_PADDLE_IN_VENV"] = "1"
    os.execv(py, [py, os.path.abspath(__file__)])


if __name__ == "__main__":
    _in_venv()

import jsonschema_rs  # noqa: E402

from harness import Env, Server, check, deploy_key, main  # noqa: E402
from paddle_contract import (BY_NAME, CTKN_EVENTS, DEVIATIONS,  # noqa: E402
                             deref, load_spec, readme_names, transform)
from test_api_contract import schemathesis  # noqa: E402

HOOKS = os.path.join(HERE, "paddle_hooks.py")
SEED = os.environ.get("CTKN_PADDLE_SEED", "20261205")
EXAMPLES = int(os.environ.get("CTKN_PADDLE_EXAMPLES", "50"))
KEYS = (("writer", "notification_setting.write"),
        ("reader", "notification_setting.read"),
        ("tokens", "client_token.read"))
SEEN = {}  # deviation name -> how many times it occurred, all sources


def seen(name, n=1):
    check(name in BY_NAME, f"unlisted deviation {name}")
    SEEN[name] = SEEN.get(name, 0) + n


def paddle():
    return transform(load_spec())


def response_schema(spec, path, method, status):
    """Paddle's schema for an answer (its `default` for an error)."""
    responses = spec["paths"][path][method]["responses"]
    r = deref(spec, responses.get(str(status), responses.get("default")))
    return r["content"]["application/json"]["schema"]


def conforms(spec, path, method, r):
    """r's body is valid under Paddle's schema for its status, with
    formats checked (next is a URI); Paddle's Request-Id header is there
    and is the body's request ID."""
    rid = r.headers.get("request-id")
    check(rid and rid == r.headers.get("x-request-id"), f"Request-Id: {r}")
    if r.status == 204:
        check(r.body == "", r)
        return None
    schema = response_schema(spec, path, method, r.status)
    doc = r.json
    errors = [str(e) for e in jsonschema_rs.validator_for(
        schema, validate_formats=True).iter_errors(doc)]
    check(not errors, f"{method.upper()} {path} {r.status} does not match "
                      f"Paddle's schema: {errors}\n{r}")
    check(doc["meta"]["request_id"] == rid, r)
    return doc


def error_field(r, status=400, code="invalid_field"):
    check(r.status == status and r.json["error"]["code"] == code,
          f"want {status} {code}: {r}")
    errs = r.json["error"].get("errors") or [{}]
    return errs[0].get("field")


def ctkn_openapi():
    import yaml
    with open(os.path.join(os.path.dirname(os.path.dirname(HERE)), "docs",
                           "openapi.yaml")) as f:
        return yaml.safe_load(f)


def openapi_deviations():
    """Every name docs/openapi.yaml gives in an x-ctkn-deviation."""
    doc = ctkn_openapi()
    found = set()

    def walk(n):
        if isinstance(n, dict):
            for k, v in n.items():
                if k == "x-ctkn-deviation":
                    found.update(x.strip() for x in str(v).split(","))
                else:
                    walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)
    walk(doc)
    return found


def example(spec, name):
    return spec["components"]["examples"][name]["value"]


# ---- 1. schemathesis against Paddle's description ---------------------------


def failure_counts(log):
    """Failures per deviation in the hooks' log, printed; those that none
    explains count as UNEXPLAINED, and are printed in full."""
    counts = {}
    try:
        with open(log) as f:
            for line in f:
                rec = json.loads(line)
                key = rec["deviation"] or "UNEXPLAINED"
                counts[key] = counts.get(key, 0) + 1
                if key == "UNEXPLAINED" or os.environ.get("CTKN_PADDLE_SHOW"):
                    print(f"  {key}: {line.strip()[:1500]}")
    except FileNotFoundError:
        pass
    for name, n in sorted(counts.items()):
        print(f"  schemathesis: {n:4d} x {name}")
    return counts


def test_schemathesis_against_paddles_description():
    exe = schemathesis()
    env = Env(name="paddle")
    srv = None
    try:
        srv = Server(env, name="paddle", keys=KEYS,
                     args=("--secret-key-file", deploy_key(env)))
        spec_path = env.path("paddle-openapi.json")
        with open(spec_path, "w") as f:
            json.dump(paddle(), f)
        # Something to read, update and delete.
        for i in range(2):
            r = srv.request("POST", "/notification-settings",
                            {"description": f"seed {i}", "type": "url",
                             "destination": "https://example.com/hook",
                             "subscribed_events": CTKN_EVENTS[:2]})
            check(r.status == 201, r)
        log = env.path("paddle-failures.jsonl")
        argv = [exe, "run", spec_path, "--url", srv.url,
                "--header", f"Authorization: Bearer {srv.keys['writer']}",
                "--checks", "all",
                "--phases", "examples,coverage,fuzzing,stateful",
                "--mode", "all",
                "--seed", SEED,
                "--max-examples", str(EXAMPLES),
                "--request-timeout", "30",
                "--workers", "1",
                "--generation-database", "none",
                "--no-color", "--output-truncate", "false"]
        print("+", " ".join(a if "Bearer" not in a else "'Authorization: "
                            "Bearer ...'" for a in argv), flush=True)
        try:
            srv.run_client("schemathesis against Paddle's description "
                           "(failures no deviation explains are above)",
                           argv, cwd=env.dir,
                           env={**os.environ, "NO_COLOR": "1",
                                "SCHEMATHESIS_HOOKS": HOOKS,
                                "SCHEMATHESIS_TELEMETRY": "false",
                                "CTKN_PADDLE_FAILURES": log},
                           timeout=300, tail=20000)
        finally:
            counts = failure_counts(log)
        check("UNEXPLAINED" not in counts, f"unexplained failures: {counts}")
        for name, n in counts.items():
            seen(name, n)
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


# ---- 2. Paddle's documented examples ----------------------------------------


def test_paddles_examples_answered_in_paddles_shape():
    spec = paddle()
    env = Env(name="paddleex")
    srv = None
    try:
        srv = Server(env, name="paddleex", keys=KEYS,
                     args=("--secret-key-file", deploy_key(env)))
        coll, item = "/notification-settings", \
            "/notification-settings/{notification_setting_id}"
        create = example(spec, "create-notification-setting-standard")
        update = example(spec, "update-notification-setting-standard")
        shown = spec["paths"][item]["get"]["responses"]["200"]["content"][
            "application/json"]["examples"]["Standard - 200 OK"]["value"]
        paddle_keys = list(shown["data"])

        # Paddle's create example as published: its events are Paddle's
        # billing events, which ctkn refuses (event-names), in Paddle's
        # error shape.
        r = srv.request("POST", coll, create)
        conforms(spec, coll, "post", r)
        check(error_field(r) == "subscribed_events", r)
        seen("event-names")
        # The same example with ctkn's events: created, in Paddle's shape,
        # with every member of Paddle's example entity.
        mine = {**create, "subscribed_events": CTKN_EVENTS}
        r = srv.request("POST", coll, mine)
        check(r.status == 201, r)
        d = conforms(spec, coll, "post", r)["data"]
        check(sorted(d) == sorted(paddle_keys), (sorted(d), paddle_keys))
        check(d["traffic_source"] == create["traffic_source"], d)
        secret = d["endpoint_secret_key"]
        did = d["id"]
        path = f"{coll}/{did}"

        # Reads return the secret, as Paddle's examples show.
        r = srv.request("GET", path, key="reader")
        g = conforms(spec, item, "get", r)["data"]
        check(g == d, (g, d))
        r = srv.request("GET", coll, key="reader")
        lst = conforms(spec, coll, "get", r)
        check(lst["data"] == [d], lst)
        pg = lst["meta"]["pagination"]
        check(pg["has_more"] is False and pg["next"] ==
              f"{srv.url}{coll}?after={did}&order_by=id%5BDESC%5D&"
              "per_page=200", pg)
        # Following next on the last page: an empty page, with a next.
        r = srv.request("GET", pg["next"][len(srv.url):], key="reader")
        e = conforms(spec, coll, "get", r)
        check(e["data"] == [] and e["meta"]["pagination"]["next"] ==
              pg["next"], e)

        # Paddle's update example: applied, in Paddle's shape.
        r = srv.request("PATCH", path, update)
        u = conforms(spec, item, "patch", r)["data"]
        check(u["description"] == update["description"] and
              u["active"] is update["active"] and
              u["endpoint_secret_key"] == secret, u)
        # traffic_source defaults to platform and reads back as sent.
        r = srv.request("POST", coll, {k: v for k, v in mine.items()
                                       if k != "traffic_source"})
        check(r.status == 201 and
              r.json["data"]["traffic_source"] == "platform", r)
        other = r.json["data"]["id"]
        r = srv.request("PATCH", f"{coll}/{other}", {"traffic_source": "all"})
        check(conforms(spec, item, "patch", r)["data"]["traffic_source"] ==
              "all", r)
        # Delete: 204 with Paddle's Request-Id.
        for x in (did, other):
            r = srv.request("DELETE", f"{coll}/{x}")
            check(r.status == 204, r)
            conforms(spec, item, "delete", r)
        # Errors in Paddle's shape, with Request-Id.
        r = srv.request("GET", f"{coll}/ntfset_7zzzzzzzzzzzzzzzzzzzzzzzzz",
                        key="reader")
        check(r.status == 404, r)
        conforms(spec, item, "get", r)
        srv.stop()
    finally:
        if srv is not None and srv.alive():
            srv.stop(check_exit=False)
        env.close()


# ---- 3. docs/openapi.yaml against Paddle's ------------------------------------


def test_ctkn_openapi_agrees_with_paddles():
    """docs/openapi.yaml describes Paddle's operations as Paddle does where
    ctkn follows it: the same operations, the entity's members, next a
    required non-null URI, Request-Id on every answer; and every
    operation Paddle has no word for is marked x-ctkn-extension (or is
    Paddle's /client-tokens, which this version of Paddle's description
    predates)."""
    spec, mine = paddle(), ctkn_openapi()
    for path, ops in spec["paths"].items():
        for method in ops:
            if method in ("get", "post", "patch", "delete"):
                check(method in mine["paths"].get(path, {}),
                      f"docs/openapi.yaml lacks Paddle's {method} {path}")
    schemas = mine["components"]["schemas"]
    paddle_entity = spec["components"]["schemas"]["notification_setting"]
    check(set(schemas["NotificationSetting"]["properties"]) ==
          set(paddle_entity["properties"]),
          "NotificationSetting's members differ from Paddle's")
    pg = schemas["Pagination"]
    check("next" in pg["required"] and not pg["properties"]["next"].get(
        "nullable") and pg["properties"]["next"]["format"] == "uri", pg)
    for path, ops in mine["paths"].items():
        for method, op in ops.items():
            if method not in ("get", "post", "patch", "delete"):
                continue
            if path not in spec["paths"] and \
                    not path.startswith("/client-tokens"):
                check("x-ctkn-extension" in op,
                      f"{method} {path}: not Paddle's, not marked "
                      f"x-ctkn-extension")
            for status, resp in op["responses"].items():
                if "$ref" in resp:
                    resp = deref(mine, resp)
                check("Request-Id" in resp.get("headers", {}),
                      f"{method} {path} {status}: no Request-Id")


# ---- 4. each deviation, probed -----------------------------------------------


def test_every_listed_deviation_still_occurs():
    spec = paddle()
    env = Env(name="paddledev")
    srv = redact = nokey = None
    coll = "/notification-settings"
    item = "/notification-settings/{notification_setting_id}"
    good = {"description": "probe", "type": "url",
            "destination": "https://example.com/hook",
            "subscribed_events": CTKN_EVENTS[:1]}
    try:
        key = deploy_key(env)
        srv = Server(env, name="paddledev", keys=KEYS,
                     args=("--secret-key-file", key))
        did = srv.request("POST", coll, good).json["data"]["id"]
        path = f"{coll}/{did}"

        def refused(name, body, field, method="POST", at=coll):
            r = srv.request(method, at, body)
            conforms(spec, coll if at == coll else item, method.lower(), r)
            check(error_field(r) == field, f"{name}: {r}")
            seen(name)

        refused("event-names", {**good, "subscribed_events":
                                ["transaction.completed"]},
                "subscribed_events")
        refused("type-url", {**good, "type": "email"}, "type")
        refused("destination-url", {**good, "destination": "ops@example.com"},
                "destination")
        refused("api-version-1", {**good, "api_version": 2}, "api_version")
        refused("no-sensitive-fields", {**good,
                                        "include_sensitive_fields": True},
                "include_sensitive_fields")
        refused("no-simulation-traffic", {**good,
                                          "traffic_source": "simulation"},
                "traffic_source")
        refused("description-text", {**good, "description": "a\u0007"},
                "description")
        refused("unknown-members", {**good, "colour": "red"}, "colour")
        # description null: accepted, and then not Paddle's entity.
        r = srv.request("PATCH", path, {"description": None})
        check(r.status == 200 and r.json["data"]["description"] is None, r)
        errors = list(jsonschema_rs.validator_for(response_schema(
            spec, item, "patch", 200)).iter_errors(r.json))
        check(errors, f"description null now matches Paddle's entity: {r}")
        seen("description-null")
        r = srv.request("PATCH", path, {"description": "probe"})
        check(r.status == 200, r)
        for method, at, body in (("PATCH", path, {}), ("PATCH", path, None),
                                 ("POST", coll, None)):
            r = srv.request(method, at, body)
            check(r.status == 400 and
                  r.json["error"]["code"] == "bad_request", r)
            conforms(spec, item if at == path else coll, method.lower(), r)
            seen("body-required")
        for body in ('{"description": "a\\u0000b"}', '{"a\\u0000": 1}'):
            r = srv.request("POST", coll, body)
            check(r.status == 400 and
                  r.json["error"]["code"] == "bad_request", r)
            conforms(spec, coll, "post", r)
            seen("no-nul-characters")
        for q, field, name in (("after=x", "after", "ids-checked"),
                               ("order_by=name", "order_by",
                                "order-by-values"),
                               ("per_page=0", "per_page", "per-page-range"),
                               ("colour=red", "colour",
                                "unknown-parameters")):
            r = srv.request("GET", f"{coll}?{q}", key="reader")
            conforms(spec, coll, "get", r)
            check(error_field(r) == field, f"{name}: {r}")
            seen(name)
        r = srv.request("GET", f"{coll}?per_page=201", key="reader")
        check(conforms(spec, coll, "get", r)["meta"]["pagination"][
            "per_page"] == 200, r)
        r = srv.request("GET", f"{coll}/x", key="reader")
        check(error_field(r) == "notification_setting_id", r)
        r = srv.request("POST", coll, '{"description": "probe", "type": '
                        '"url", "api_version": 99999999999999999999}')
        conforms(spec, coll, "post", r)
        check(error_field(r) == "api_version" and "9223372036854775807" in
              r.json["error"]["errors"][0]["message"], r)
        seen("number-range")
        for k in (None, "Bearer nonsense"):
            r = srv.request("GET", coll, key=k)
            check(r.status == 403, r)
            conforms(spec, coll, "get", r)
        seen("auth-is-403")

        # Endpoint secrets: shown by srv, not by a replica told to redact
        # them, nor by one without the deployment key.
        redact = Server(env, name="redact", keys=KEYS,
                        args=("--secret-key-file", key,
                              "--redact-endpoint-secrets"))
        nokey = Server(env, name="nokey", keys=KEYS)
        check("endpoint_secret_key" in srv.request(
            "GET", path, key="reader").json["data"], "srv shows it")
        for s in (redact, nokey):
            import time
            deadline = time.monotonic() + 30
            while True:
                r = s.request("GET", path, key="reader")
                if r.status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            d = conforms(spec, item, "get", r)["data"]
            check("endpoint_secret_key" not in d, f"{s.url}: {d}")
        seen("endpoint-secret-redaction")

        # Every listed deviation occurred, and the README lists the same.
        names = [d["name"] for d in DEVIATIONS]
        for name in names:
            print(f"  {SEEN.get(name, 0):4d} x {name}: "
                  f"{BY_NAME[name]['reason']}")
        missing = [n for n in names if not SEEN.get(n)]
        check(not missing, f"listed deviations that no longer occur: "
                           f"{missing}; take them off the list (and README)")
        check(readme_names() == names,
              f"README's compatibility section lists {readme_names()}, "
              f"the test {names}")
        marked = openapi_deviations()
        check(marked <= set(names) and "event-names" in marked,
              f"docs/openapi.yaml marks x-ctkn-deviation {sorted(marked)}, "
              f"not all listed: {sorted(marked - set(names))}")
        for s in (srv, redact, nokey):
            s.stop()
    finally:
        for s in (srv, redact, nokey):
            if s is not None and s.alive():
                s.stop(check_exit=False)
        env.close()


if __name__ == "__main__":
    main([test_ctkn_openapi_agrees_with_paddles,
          test_paddles_examples_answered_in_paddles_shape,
          test_schemathesis_against_paddles_description,
          test_every_listed_deviation_still_occurs])
