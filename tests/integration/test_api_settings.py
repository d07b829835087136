#!/usr/bin/env python3
"""`ctkn serve`'s notification settings (Paddle's /notification-settings)
over the real broker: create (the endpoint secret shown once), list with
Paddle's parameters, get, pause, delete, the permissions, the errors, a
server without the deployment key, and agreement with the CLI and another
replica through the settings topic; where destinations may point (no
special-purpose address unless --allow-destination-network admits it, no
user info, https in live) and at most 10 active ones."""
import re
import threading
import time

from harness import (Env, Follower, Server, check, deploy_key, log_end_offsets,
                     main)
from test_api import error_of

DEST_RE = re.compile(r"^ntfset_[0-9a-z]{26}$")
SECRET_RE = re.compile(r"^pdl_ntfset_([0-9a-z]{26})_[A-Za-z0-9]{32}$")
ENTITY_KEYS = ["id", "description", "type", "destination", "active",
               "api_version", "include_sensitive_fields", "subscribed_events",
               "traffic_source"]
UNKNOWN = "ntfset_" + "0" * 26
KEYS = (("admin", "client_token.write,notification_setting.write"),
        ("sread", "notification_setting.read"),
        ("swrite", "notification_setting.write"),
        ("writer", "client_token.read,client_token.write"))


def body(**kw):
    b = {"description": "Backend", "type": "url",
         "destination": "https://example.com/hooks/ctkn",
         "subscribed_events": ["client_token.created",
                               "client_token.revoked"]}
    b.update(kw)
    return {k: v for k, v in b.items() if v is not ...}


def create(srv, key="admin", **kw):
    r = srv.request("POST", "/notification-settings", body(**kw), key=key)
    check(r.status == 201, f"create: {r}")
    return r.json["data"]


def ids(r):
    check(r.status == 200, r)
    return [d["id"] for d in r.json["data"]]


def wait_for(what, fn, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            check(v, f"timed out waiting for {what}")
            return v
        time.sleep(0.2)


def test_create_get_list_pause_delete():
    env = Env(name="apiset")
    # The PATCH below points the destination at loopback: allowed here.
    srv = Server(env, keys=KEYS, args=("--secret-key-file", deploy_key(env),
                                       "--allow-destination-network",
                                       "127.0.0.0/8"))
    try:
        r = srv.request("POST", "/notification-settings",
                        body(api_version=1, include_sensitive_fields=False,
                             traffic_source="platform"), key="admin")
        check(r.status == 201, r)
        check(r.headers["content-type"] == "application/json", r.headers)
        check(r.json["meta"]["request_id"] == r.headers["x-request-id"], r)
        d = r.json["data"]
        check(list(d) == ENTITY_KEYS[:8] + ["endpoint_secret_key",
                                            "traffic_source"], d)
        check(DEST_RE.match(d["id"]), d)
        secret = d["endpoint_secret_key"]
        m = SECRET_RE.match(secret)
        check(m and m.group(1) == d["id"][7:], d)
        check(d["description"] == "Backend" and d["type"] == "url" and
              d["destination"] == "https://example.com/hooks/ctkn" and
              d["active"] is True and d["api_version"] == 1 and
              d["include_sensitive_fields"] is False and
              d["traffic_source"] == "platform", d)
        check([e["name"] for e in d["subscribed_events"]] ==
              ["client_token.created", "client_token.revoked"], d)
        check(all(set(e) == {"name", "description", "group",
                             "available_versions"}
                  for e in d["subscribed_events"]), d)
        did = d["id"]
        entity = {k: v for k, v in d.items() if k != "endpoint_secret_key"}

        # Reads: the same entity, its secret included, as Paddle's: this
        # server holds the deployment key.
        g = srv.request("GET", f"/notification-settings/{did}", key="sread")
        check(g.status == 200 and g.json["data"] == d, (g, d))
        lst = srv.request("GET", "/notification-settings", key="sread")
        check(lst.status == 200 and lst.json["data"] == [d], lst)
        pg = lst.json["meta"]["pagination"]
        check(pg == {"per_page": 200,
                     "next": f"{srv.url}/notification-settings?after={did}&"
                             "order_by=id%5BDESC%5D&per_page=200",
                     "has_more": False, "estimated_total": 1}, pg)
        h = srv.request("HEAD", f"/notification-settings/{did}", key="sread")
        check(h.status == 200 and h.body == "", h)
        # The CLI on the server's projection agrees (it shows no secret).
        check(env.ok("destination", "get", did, db=srv.db).json["data"] ==
              entity, "CLI differs")

        # Pause, then change the rest; a PATCH of Paddle's fixed fields
        # alone changes nothing and answers the entity as it is.
        p = srv.request("PATCH", f"/notification-settings/{did}",
                        {"active": False}, key="swrite")
        check(p.status == 200 and p.json["data"]["active"] is False, p)
        check(p.json["data"]["endpoint_secret_key"] == secret, p)
        p = srv.request("PATCH", f"/notification-settings/{did}",
                        {"description": None,
                         "destination": "http://127.0.0.1:9/x",
                         "subscribed_events": ["client_token.updated"],
                         "traffic_source": "all"}, key="admin")
        check(p.status == 200, p)
        d2 = p.json["data"]
        check(d2["description"] is None and
              d2["destination"] == "http://127.0.0.1:9/x" and
              [e["name"] for e in d2["subscribed_events"]] ==
              ["client_token.updated"] and d2["active"] is False and
              d2["traffic_source"] == "all", d2)
        p = srv.request("PATCH", f"/notification-settings/{did}",
                        {"api_version": 1, "include_sensitive_fields": False},
                        key="admin")
        check(p.status == 200 and p.json["data"] == d2, (p, d2))
        check(srv.request("GET", f"/notification-settings/{did}",
                          key="sread").json["data"] == d2, "GET after PATCH")

        # Delete: 204 without a body, then gone everywhere.
        x = srv.request("DELETE", f"/notification-settings/{did}",
                        key="admin")
        check(x.status == 204 and x.body == "", x)
        # Paddle's contract names Request-Id on the 204; X-Request-Id too.
        check(x.headers.get("request-id") == x.headers["x-request-id"], x)
        check("content-type" not in x.headers, x.headers)
        check(x.headers.get("x-request-id"), x.headers)
        error_of(srv.request("GET", f"/notification-settings/{did}",
                             key="sread"), 404, "not_found")
        error_of(srv.request("DELETE", f"/notification-settings/{did}",
                             key="admin"), 404, "not_found")
        error_of(srv.request("PATCH", f"/notification-settings/{did}",
                             {"active": True}, key="admin"), 404, "not_found")
        error_of(srv.request("DELETE", f"/notification-settings/{UNKNOWN}",
                             key="admin"), 404, "not_found")
        check(ids(srv.request("GET", "/notification-settings",
                              key="sread")) == [], "deleted one listed")

        # The secret was shown once: in nothing else, not even the log.
        check(secret not in srv.output(), "the secret was logged")
        m = srv.request("GET", "/metrics", key=None).body
        for line in ('route="settings_create",status="201"} 1',
                     'route="settings_get",status="200"}',
                     'route="settings_list",status="200"}',
                     'route="settings_update",status="200"} 3',
                     'route="settings_delete",status="204"} 1',
                     'route="settings_delete",status="404"} 2'):
            check(line in m, f"{line} not in metrics:\n{m}")
    finally:
        srv.stop()
        env.close()


def test_list_parameters():
    env = Env(name="apisetlist")
    srv = Server(env, keys=KEYS, args=("--secret-key-file", deploy_key(env)))
    try:
        made = [create(srv, description=f"d{i}")["id"] for i in range(3)]
        asc = sorted(made)
        srv.request("PATCH", f"/notification-settings/{asc[1]}",
                    {"active": False}, key="admin")
        r = srv.request("PATCH", f"/notification-settings/{asc[0]}",
                        {"traffic_source": "all"}, key="admin")
        check(r.status == 200 and r.json["data"]["traffic_source"] == "all", r)
        # Default order: id[DESC], as Paddle's.
        check(ids(srv.request("GET", "/notification-settings",
                              key="sread")) == asc[::-1], "default order")
        r = srv.request("GET", "/notification-settings?order_by=id[ASC]"
                        "&per_page=2", key="sread")
        check(ids(r) == asc[:2], r)
        pg = r.json["meta"]["pagination"]
        check(pg["per_page"] == 2 and pg["has_more"] is True and
              pg["estimated_total"] == 3, pg)
        check(pg["next"].startswith(srv.url + "/notification-settings?"), pg)
        nxt = pg["next"][len(srv.url):]
        r = srv.request("GET", nxt, key="sread")
        check(ids(r) == asc[2:], r)
        check(r.json["meta"]["pagination"]["has_more"] is False and
              r.json["meta"]["pagination"]["next"] ==
              f"{srv.url}/notification-settings?after={asc[2]}&"
              "order_by=id%5BASC%5D&per_page=2", r)
        r = srv.request("GET", f"/notification-settings?after={asc[2]}"
                        "&per_page=1", key="sread")
        check(ids(r) == [asc[1]], r)
        check(r.json["meta"]["pagination"]["has_more"] is True, r)
        check(ids(srv.request("GET", "/notification-settings?per_page=1000",
                              key="sread")) == asc[::-1], "per_page cap")
        # Filters: active, and traffic_source (the value each was given;
        # ctkn has only platform traffic: simulation matches nothing).
        check(ids(srv.request("GET", "/notification-settings?active=false",
                              key="sread")) == [asc[1]], "active=false")
        check(ids(srv.request("GET", "/notification-settings?active=true&"
                              "order_by=id[ASC]", key="sread")) ==
              [asc[0], asc[2]], "active=true")
        r = srv.request("GET", "/notification-settings?active=true&per_page=1"
                        "&traffic_source=platform", key="sread")
        check(ids(r) == [asc[2]], r)
        check("active=true" in r.json["meta"]["pagination"]["next"] and
              "traffic_source=platform" in
              r.json["meta"]["pagination"]["next"], r)
        check(ids(srv.request("GET", "/notification-settings?traffic_source="
                              "all", key="sread")) == [asc[0]], "all")
        check(ids(srv.request("GET", "/notification-settings?traffic_source="
                              "platform", key="sread")) == asc[:0:-1],
              "platform")
        check(ids(srv.request("GET", "/notification-settings?traffic_source="
                              "simulation", key="sread")) == [], "simulation")
        for q, field in (("active=yes", "active"), ("per_page=0", "per_page"),
                         ("order_by=name", "order_by"),
                         ("after=ctkn_" + "0" * 26, "after"),
                         ("traffic_source=web", "traffic_source"),
                         ("status=active", "status"),
                         ("active=true&active=false", "active")):
            e = error_of(srv.request("GET", f"/notification-settings?{q}",
                                     key="sread"), 400, "invalid_field")
            check(e["errors"][0]["field"] == field, (q, e))
    finally:
        srv.stop()
        env.close()


def test_permissions():
    env = Env(name="apisetperm")
    srv = Server(env, keys=KEYS, args=("--secret-key-file", deploy_key(env)))
    try:
        did = create(srv, key="swrite")["id"]
        routes = (("GET", "/notification-settings", None),
                  ("GET", f"/notification-settings/{did}", None),
                  ("POST", "/notification-settings", body()),
                  ("PATCH", f"/notification-settings/{did}",
                   {"active": False}),
                  ("DELETE", f"/notification-settings/{did}", None))
        # A client_token key has no notification_setting permission.
        for method, path, b in routes:
            e = error_of(srv.request(method, path, b, key="writer"), 403,
                         "forbidden")
            want = ("notification_setting.read" if method == "GET"
                    else "notification_setting.write")
            check(want in e["detail"], e)
        # notification_setting.read reads, and writes nothing.
        check(ids(srv.request("GET", "/notification-settings",
                              key="sread")) == [did], "sread lists")
        for method, path, b in routes[2:]:
            e = error_of(srv.request(method, path, b, key="sread"), 403,
                         "forbidden")
            check("notification_setting.write" in e["detail"], e)
        # notification_setting.write implies its read, not client_token's.
        check(srv.request("GET", f"/notification-settings/{did}",
                          key="swrite").status == 200, "write implies read")
        e = error_of(srv.request("GET", "/client-tokens", key="swrite"), 403,
                     "forbidden")
        check("client_token.read" in e["detail"], e)
        error_of(srv.request("GET", "/notification-settings", key=None), 403,
                 "authentication_missing")
        # Nothing changed.
        g = srv.request("GET", f"/notification-settings/{did}", key="sread")
        check(g.status == 200 and g.json["data"]["active"] is True, g)
    finally:
        srv.stop()
        env.close()


def test_bad_requests_name_the_field():
    env = Env(name="apisetbad")
    srv = Server(env, keys=KEYS, args=("--secret-key-file", deploy_key(env)))
    try:
        did = create(srv)["id"]
        path = f"/notification-settings/{did}"
        for b, field in (
                (body(type="email"), "type"),
                (body(type=...), "type"),
                (body(description=...), "description"),
                (body(description=None), "description"),
                (body(description=""), "description"),
                (body(description="x" * 501), "description"),
                (body(destination="ftp://example.com"), "destination"),
                (body(destination=...), "destination"),
                (body(subscribed_events=...), "subscribed_events"),
                (body(subscribed_events=[]), "subscribed_events"),
                (body(subscribed_events=["transaction.completed"]),
                 "subscribed_events"),
                (body(api_version=2), "api_version"),
                (body(include_sensitive_fields=True),
                 "include_sensitive_fields"),
                (body(traffic_source="simulation"), "traffic_source"),
                (body(traffic_source=None), "traffic_source"),
                (body(active="yes"), "active"),
                (body(colour="red"), "colour")):
            e = error_of(srv.request("POST", "/notification-settings", b,
                                     key="admin"), 400, "invalid_field")
            check(e["errors"][0]["field"] == field, (b, e))
        # A number past int64 is out of range, not malformed JSON: it
        # names its field and the range.
        for raw, field in (('{"api_version": 99999999999999999999}',
                            "api_version"),
                           ('{"description": "d", "api_version": -1e400}',
                            "api_version")):
            e = error_of(srv.request("POST", "/notification-settings", raw,
                                     key="admin"), 400, "invalid_field")
            check(e["errors"][0]["field"] == field and
                  "9223372036854775807" in e["errors"][0]["message"], e)
        for raw in ('{"description": ', "[]", "", '"x"'):
            error_of(srv.request("POST", "/notification-settings", raw,
                                 key="admin"), 400, "bad_request")
        for b, field in (({"type": "url"}, "type"),
                         ({"colour": 1}, "colour"),
                         ({"description": 7}, "description"),
                         ({"destination": "nope"}, "destination"),
                         ({"subscribed_events": "client_token.created"},
                          "subscribed_events"),
                         ({"active": True, "api_version": 2}, "api_version")):
            e = error_of(srv.request("PATCH", path, b, key="admin"), 400,
                         "invalid_field")
            check(e["errors"][0]["field"] == field, (b, e))
        error_of(srv.request("PATCH", path, {}, key="admin"), 400,
                 "bad_request")
        error_of(srv.request("PATCH", path, "{", key="admin"), 400,
                 "bad_request")
        for method in ("GET", "PATCH", "DELETE"):
            e = error_of(srv.request(method, "/notification-settings/nope",
                                     {"active": True} if method == "PATCH"
                                     else None, key="admin"),
                         400, "invalid_field")
            check(e["errors"][0]["field"] == "notification_setting_id", e)
        error_of(srv.request("DELETE", path, {"x": 1}, key="admin"), 400,
                 "bad_request")
        r = srv.request("PUT", path, body(), key="admin")
        error_of(r, 405, "method_not_allowed")
        check(r.headers["allow"] == "GET, HEAD, PATCH, DELETE", r.headers)
        r = srv.request("DELETE", "/notification-settings", key="admin")
        error_of(r, 405, "method_not_allowed")
        check(r.headers["allow"] == "GET, HEAD, POST", r.headers)
        error_of(srv.request("GET", f"{path}/x", key="admin"), 404,
                 "not_found")
        # None of them changed anything.
        lst = srv.request("GET", "/notification-settings", key="admin")
        check(ids(lst) == [did] and lst.json["data"][0]["active"] is True,
              lst)
    finally:
        srv.stop()
        env.close()


def test_unsafe_destinations_and_the_active_limit():
    """POST and PATCH refuse what the URL tells is unsafe, as invalid_field
    on destination, and an 11th active destination as Paddle does; nothing
    of it is stored."""
    env = Env(name="apisetssrf")
    key = deploy_key(env)
    srv = Server(env, keys=KEYS, args=("--secret-key-file", key,
                                       "--allow-destination-network",
                                       "10.0.0.0/8",
                                       "--max-active-destinations", "3"))
    live = None
    try:
        did = create(srv)["id"]
        path = f"/notification-settings/{did}"
        for url, words in (
                ("http://127.0.0.1:9/x", "127.0.0.1 is not globally reachable"
                                         " (loopback 127.0.0.0/8); allow it "
                                         "with --allow-destination-network"),
                ("http://2130706433/x", "127.0.0.1 is not"),
                ("http://0x7f.1/x", "127.0.0.1 is not"),
                ("http://0/x", "0.0.0.0 is not"),
                ("http://[::1]/x", "::1 is not"),
                ("http://[::ffff:10.0.0.1]/x", "IPv4-mapped"),
                ("http://169.254.169.254/latest/meta-data", "link-local"),
                ("http://11.0.0.1@10.0.0.1/x", "user info"),
                ("https://u:p@example.com/x", "user info")):
            for method, p, b in (("POST", "/notification-settings",
                                  body(destination=url)),
                                 ("PATCH", path, {"destination": url})):
                e = error_of(srv.request(method, p, b, key="admin"), 400,
                             "invalid_field")
                check(e["errors"][0]["field"] == "destination" and
                      words in e["detail"], (method, url, e))
        # The server's allowance admits its network.
        r = srv.request("PATCH", path, {"destination": "http://10.1.2.3/x"},
                        key="admin")
        check(r.status == 200, r)
        # At most 3 active here (--max-active-destinations).
        create(srv)
        create(srv)
        e = error_of(srv.request("POST", "/notification-settings", body(),
                                 key="admin"), 400,
                     "notification_maximum_active_settings_reached")
        check("at most 3 notification settings may be active" in e["detail"],
              e)
        paused = create(srv, active=False)["id"]
        e = error_of(srv.request("PATCH", f"/notification-settings/{paused}",
                                 {"active": True}, key="admin"), 400,
                     "notification_maximum_active_settings_reached")
        lst = srv.request("GET", "/notification-settings", key="sread")
        check(len(ids(lst)) == 4 and
              sum(d["active"] for d in lst.json["data"]) == 3, lst)
        check([d["destination"] for d in lst.json["data"]
               if d["id"] == did] == ["http://10.1.2.3/x"], lst)

        # live: https only.
        live = Server(env, name="live", keys=KEYS,
                      args=("--secret-key-file", key, "--environment",
                            "live"))
        e = error_of(live.request("POST", "/notification-settings",
                                  body(destination="http://example.com/x"),
                                  key="admin"), 400, "invalid_field")
        check(e["errors"][0]["field"] == "destination" and
              "https:// URL in the live environment" in e["detail"], e)
        # https is; and this server's limit is the default, 10.
        check(live.request("POST", "/notification-settings", body(),
                           key="admin").status == 201, "live https")
    finally:
        if live is not None:
            live.stop()
        srv.stop()
        env.close()


def test_replicas_and_the_cli_agree():
    """A destination made over HTTP is in another replica's projection
    (`ctkn destination list` on a follower's db), and one made by the CLI
    is served over HTTP. A server without the deployment key cannot
    create (503, naming --secret-key-file) but can change and delete."""
    env = Env(name="apisetrep")
    key = deploy_key(env)
    srv = Server(env, keys=KEYS, args=("--secret-key-file", key))
    nokey = Server(env, name="nokey", keys=KEYS)
    redact = Server(env, name="redact", keys=KEYS,
                    args=("--secret-key-file", key,
                          "--redact-endpoint-secrets"))
    follower = Follower(env, "follower-db")
    try:
        d = create(srv)
        entity = {k: v for k, v in d.items() if k != "endpoint_secret_key"}
        # Endpoint secrets on reads: a replica with the deployment key
        # returns them, as Paddle does; one without the key, or told to
        # redact them, leaves them out (README, "Compatibility").
        path = f"/notification-settings/{d['id']}"
        for s, want in ((srv, d), (nokey, entity), (redact, entity)):
            wait_for(f"{s.url} to have {d['id']}", lambda: s.request(
                "GET", path, key="sread").status == 200)
            g = s.request("GET", path, key="sread")
            check(g.json["data"] == want, (s.url, g))
            lst = s.request("GET", "/notification-settings", key="sread")
            check(lst.json["data"] == [want], (s.url, lst))
            p = s.request("PATCH", path, {"api_version": 1}, key="swrite")
            check(p.json["data"] == want, (s.url, p))
        # A create's answer always has it, redacting or not.
        r = redact.request("POST", "/notification-settings",
                           body(description="redacted"), key="admin")
        check(r.status == 201 and
              SECRET_RE.match(r.json["data"]["endpoint_secret_key"]), r)
        x = redact.request("DELETE",
                           f"/notification-settings/{r.json['data']['id']}",
                           key="admin")
        check(x.status == 204, x)

        def in_follower():
            r = env.ctkn("destination", "list", db=follower.db)
            return r.rc == 0 and r.json["data"] == [entity]
        wait_for("the follower's projection", in_follower)
        wait_for("the other server", lambda: srv.request(
            "GET", "/notification-settings", key="sread").status == 200 and
            nokey.request("GET", "/notification-settings",
                          key="sread").json["data"] == [entity])

        # The CLI adds one; both servers serve it.
        cli = env.ok("destination", "add", "--url", "https://cli.example/h",
                     "--events", "client_token.updated", "--description",
                     "from the CLI", "--secret-key-file", key,
                     db=env.path("cli-db")).json["data"]
        check(SECRET_RE.match(cli["endpoint_secret_key"]), cli)
        for s in (srv, nokey):
            wait_for("the CLI's destination", lambda: cli["id"] in ids(
                s.request("GET", "/notification-settings", key="sread")))

        # Without the key: no create; changes and deletes still work.
        r = nokey.request("POST", "/notification-settings", body(),
                          key="admin")
        e = error_of(r, 503, "service_unavailable")
        check("--secret-key-file" in e["detail"], e)
        check("retry-after" not in r.headers, r.headers)
        p = nokey.request("PATCH", f"/notification-settings/{cli['id']}",
                          {"active": False}, key="admin")
        check(p.status == 200 and p.json["data"]["active"] is False, p)
        wait_for("the pause on the other server", lambda: srv.request(
            "GET", f"/notification-settings/{cli['id']}",
            key="sread").json["data"]["active"] is False)
        x = nokey.request("DELETE", f"/notification-settings/{d['id']}",
                          key="admin")
        check(x.status == 204, x)

        def gone():
            r = env.ctkn("destination", "list", db=follower.db)
            return r.rc == 0 and [x["id"] for x in r.json["data"]] == \
                [cli["id"]]
        wait_for("the delete in the follower's projection", gone)
        check(nokey.request("GET", f"/notification-settings/{d['id']}",
                            key="sread").status == 404, "deleted")
    finally:
        follower.stop()
        redact.stop()
        nokey.stop()
        srv.stop()
        env.close()


def test_token_writes_run_beside_setting_writes():
    """Setting writes run on their own thread: token creates sent while
    destinations are created all succeed."""
    env = Env(name="apisetconc")
    srv = Server(env, keys=KEYS, args=("--secret-key-file", deploy_key(env)))
    try:
        res = []

        def setting(i):
            res.append(srv.request("POST", "/notification-settings",
                                   body(description=f"c{i}"), key="admin"))

        def token(i):
            res.append(srv.request("POST", "/client-tokens",
                                   {"name": f"t{i}"}, key="admin"))
        ts = [threading.Thread(target=setting, args=(i,)) for i in range(4)]
        ts += [threading.Thread(target=token, args=(i,)) for i in range(16)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        check(sorted(r.status for r in res) == [201] * 20,
              [r for r in res if r.status != 201])
        check(len(ids(srv.request("GET", "/notification-settings",
                                  key="admin"))) == 4, "4 destinations")
        check(env.events() == 16, env.end_offsets())
    finally:
        srv.stop()
        env.close()


def test_a_replica_without_a_writer_key_is_read_only():
    """`ctkn serve --trust-root` without a writer key appends nothing: a
    token or destination write is 403 forbidden naming --writer-key, where
    it used to append an unsigned record every reader then quarantined;
    reads still answer."""
    env = Env(name="apiro", partitions=2)
    srv = Server(env, keys=KEYS, args=("--secret-key-file", deploy_key(env),
                                       "--writer-key", ""))
    try:
        ends = (env.end_offsets(), log_end_offsets(env.topic + "_settings"))
        for path, b in (("/client-tokens", {"name": "ro"}),
                        ("/notification-settings", body())):
            r = srv.request("POST", path, b, key="admin")
            check(r.status == 403 and r.json["error"]["code"] == "forbidden"
                  and "--writer-key" in r.json["error"]["detail"], f"{r}")
        check((env.end_offsets(), log_end_offsets(env.topic + "_settings"))
              == ends, "a read-only replica appended")
        check(srv.request("GET", "/client-tokens", key="writer").status == 200,
              "reads answer")
    finally:
        srv.stop()
        env.close()


if __name__ == "__main__":
    main([test_create_get_list_pause_delete,
          test_list_parameters,
          test_permissions,
          test_bad_requests_name_the_field,
          test_unsafe_destinations_and_the_active_limit,
          test_replicas_and_the_cli_agree,
          test_token_writes_run_beside_setting_writes,
          test_a_replica_without_a_writer_key_is_read_only])
