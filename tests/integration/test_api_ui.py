"""The dashboard at /ui/ of `ctkn serve`, over the real broker: its files
and security headers, the history route it reads
(GET /client-tokens/{id}/history), and the page itself driven in Debian's
headless chromium through chromedriver (webdriver.py): sign in, create a
token, find it, open its history, revoke it (the revoke checked through
the API), destinations, deliveries (a `ctkn notify` run against a
receiver answering hostile bodies: the status filter, the attempt logs,
a replay checked through the API), health (quarantined records and a
paused partition called out), errors, hostile text, where the key is
kept, read-only keys, a phone's width.

Screenshots (PNG) go to $CTKN_UI_SHOTS (ctest: the build tree's
tests/integration/ui-shots); scripts/ui-screenshots copies the README's
three into docs/.
"""
import json
import os
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import Env, Server, check, deploy_key, main
import webdriver

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}"
                     r"-[0-9a-f]{12}$")
XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_DESC = "<script>alert(2)</script>"
XSS_DEST = "<b onmouseover=alert(3)>hooks</b><img src=x onerror=alert(4)>"
XSS_BODY = "<img src=x onerror=alert(1)><script>alert(6)</script>"
ALLOW_LO = ("--allow-destination-network", "127.0.0.0/8")
KEYS = (("admin", "client_token.read,client_token.write,"
                  "notification_setting.write"),
        ("reader", "client_token.read"))
SHOTS = os.environ.get("CTKN_UI_SHOTS", "")

UI_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


def shots_dir(env):
    d = SHOTS or env.path("ui-shots")
    os.makedirs(d, exist_ok=True)
    return d


def check_ui_headers(r):
    for k, v in UI_HEADERS.items():
        check(r.headers.get(k) == v, f"{k}: {r.headers}")
    csp = [p.strip() for p in r.headers["content-security-policy"].split(";")]
    for want in ("default-src 'none'", "script-src 'self'",
                 "style-src 'self'", "connect-src 'self'",
                 "frame-ancestors 'none'", "form-action 'none'",
                 "base-uri 'none'"):
        check(want in csp, f"CSP lacks {want}: {csp}")
    check("unsafe" not in r.headers["content-security-policy"], csp)


def test_files_and_headers():
    env = Env(name="ui", partitions=1)
    srv = Server(env, keys=KEYS)
    try:
        for path in ("/ui/", "/ui", "/ui/index.html"):
            r = srv.request("GET", path, key=None)  # no key: a static page
            check(r.status == 200, f"{path}: {r}")
            check(r.headers["content-type"] == "text/html; charset=utf-8", r)
            check_ui_headers(r)
            check(r.body.startswith("<!doctype html>"), r)
        html = r.body
        # No inline script or style for the CSP to have to allow: scripts
        # come from /ui/ by src, no on* handlers, no style attributes.
        for s in re.findall(r"<script[^>]*>(.*?)</script>", html, re.S):
            check(s.strip() == "", f"inline script: {s!r}")
        check(re.search(r"\son\w+\s*=", html) is None, "an on* handler")
        check(re.search(r"\sstyle\s*=|<style", html) is None, "inline style")
        check(re.search(r"(src|href)=\"(https?:)?//", html) is None,
              "something loaded from elsewhere")
        for name, ctype in (("app.js", "text/javascript; charset=utf-8"),
                            ("app.css", "text/css; charset=utf-8")):
            r = srv.request("GET", "/ui/" + name, key=None)
            check(r.status == 200 and r.headers["content-type"] == ctype, r)
            check_ui_headers(r)
            check("http://" not in r.body and "https://" not in r.body,
                  f"{name} names another origin")
        js = srv.request("GET", "/ui/app.js", key=None).body
        for bad in ("innerHTML", "outerHTML", "insertAdjacentHTML",
                    "document.write", "eval(", "new Function",
                    "localStorage.", "document.cookie"):
            check(bad not in js, f"app.js uses {bad}")
        r = srv.request("HEAD", "/ui/app.js", key=None)
        check(r.status == 200 and r.body == "", r)
        r = srv.request("GET", "/ui/nope.js", key=None)
        check(r.status == 404 and r.json["error"]["code"] == "not_found", r)
        check_ui_headers(r)
        for path in ("/ui/a/b", "/ui/../client-tokens", "/uix"):
            r = srv.request("GET", path, key=None)
            check(r.status == 404, f"{path}: {r}")
        r = srv.request("POST", "/ui/", body={}, key=None)
        check(r.status == 405 and r.headers["allow"] == "GET, HEAD", r)
        r = srv.request("GET", "/ui/?key=x", key=None)
        check(r.status == 400 and
              r.json["error"]["errors"][0]["field"] == "key", r)
        # The API's own answers are not the page's: no CSP there.
        r = srv.request("GET", "/client-tokens", key="reader")
        check("content-security-policy" not in r.headers, r.headers)
    finally:
        srv.stop()
        env.close()


def test_history_route():
    env = Env(name="uihist", partitions=2)
    srv = Server(env, keys=KEYS)
    try:
        r = srv.request("POST", "/client-tokens", {"name": "Hist"},
                        key="admin")
        check(r.status == 201, r)
        tid = r.json["data"]["id"]
        check(srv.request("PATCH", f"/client-tokens/{tid}",
                          {"name": "Hist 2", "description": "d"},
                          key="admin").status == 200, "rename")
        r = srv.request("PATCH", f"/client-tokens/{tid}",
                        {"status": "revoked"}, key="admin")
        check(r.status == 200, r)
        # A read sent after the write waits for it (X-Ctkn-Min-Position).
        pos = {"X-Ctkn-Min-Position": r.headers["x-ctkn-position"]}
        r = srv.request("GET", f"/client-tokens/{tid}/history",
                        key="reader", headers=pos)
        check(r.status == 200, r)
        doc = r.json
        check(list(doc) == ["data", "meta"], doc)
        check(doc["meta"]["request_id"] == r.headers["request-id"], r)
        evs = doc["data"]
        check([e["event_type"] for e in evs] ==
              ["client_token.created", "client_token.updated",
               "client_token.revoked"], evs)
        check([e["data"]["name"] for e in evs] == ["Hist", "Hist 2",
                                                  "Hist 2"], evs)
        check(all(e["data"]["id"] == tid for e in evs), evs)
        # The same events as `ctkn history` (a projection of its own).
        env.ok("project", db=env.path("cli-db"))
        cli = env.ok("history", tid, db=env.path("cli-db")).lines
        check(cli == evs, f"CLI {cli} != API {evs}")
        # Errors: permission, ID, unknown token, parameters, methods.
        r = srv.request("GET", f"/client-tokens/{tid}/history", key=None)
        check(r.status == 403 and
              r.json["error"]["code"] == "authentication_missing", r)
        r = srv.request("GET", "/client-tokens/nope/history", key="reader")
        check(r.status == 400 and r.json["error"]["errors"][0]["field"] ==
              "client_token_id", r)
        r = srv.request("GET", "/client-tokens/ctkn_" + "0" * 26 + "/history",
                        key="reader")
        check(r.status == 404 and r.json["error"]["code"] == "not_found", r)
        r = srv.request("GET", f"/client-tokens/{tid}/history?x=1",
                        key="reader")
        check(r.status == 400 and r.json["error"]["code"] == "invalid_field",
              r)
        r = srv.request("POST", f"/client-tokens/{tid}/history", {},
                        key="admin")
        check(r.status == 405 and r.headers["allow"] == "GET, HEAD", r)
        for path in (f"/client-tokens/{tid}/historyx",
                     f"/client-tokens/{tid}/history/1",
                     "/client-tokens//history"):
            r = srv.request("GET", path, key="reader")
            check(r.status == 404, f"{path}: {r}")
    finally:
        srv.stop()
        env.close()


# ---- the browser ---------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sign_in(b, srv, key):
    b.get(srv.url + "/ui/")
    b.wait("#key")
    # Keyboard only: the page focuses the key field; type, press Enter.
    b.wait_for(lambda: b.focused() == "key", "focus on the key field")
    b.keys(*srv.keys[key], "enter")
    b.wait("#tokens-body tr")


def no_injection(b, where):
    check(b.alert_text() is None, f"{where}: an alert opened")
    n = b.run("return document.querySelectorAll("
              "'img, script:not([src]), b, [onerror], [onmouseover]').length")
    check(n == 0, f"{where}: {n} injected elements")


def row_of(b, tid):
    return b.wait(f'tr[data-id="{tid}"]')


def flow_tokens(b, srv, shots, hostile):
    perms = b.text(b.wait("#perms"))
    check("client_token.write" in perms, perms)
    # Hostile text from the API renders as text.
    b.select(b.wait("#status-filter"), "active,revoked")
    b.wait(f'tr[data-id="{hostile}"]')
    row = row_of(b, hostile)
    names = b.run("return [...document.querySelectorAll('#tokens-body .name')]"
                  ".map(e => e.textContent)")
    check(XSS_NAME in names, names)
    no_injection(b, "tokens")

    # Create.
    b.type(b.wait("#create-name"), "ui-made <i>one</i>")
    b.type(b.wait("#create-description"), "made in the browser")
    b.click(b.wait("#create-button"))
    b.wait_for(lambda: "ui-made" in b.run(
        "return document.getElementById('tokens-body').textContent"),
        "the new token in the list")
    tid = b.run("return [...document.querySelectorAll('#tokens-body tr')]"
                ".find(r => r.textContent.includes('ui-made')).dataset.id")
    check(re.match(r"^ctkn_[0-9a-z]{26}$", tid or ""), tid)
    r = srv.request("GET", f"/client-tokens/{tid}", key="admin")
    check(r.status == 200 and r.json["data"]["name"] == "ui-made <i>one</i>"
          and r.json["data"]["status"] == "active", r)
    b.screenshot(os.path.join(shots, "tokens.png"))

    # Find it: the name filter over the loaded page.
    b.type(b.wait("#name-filter"), "UI-MADE")
    b.wait_for(lambda: len(b.find_all("#tokens-body tr[data-id]")) == 1,
               "one row left by the filter")
    check(b.find_all("#tokens-body tr[data-id]") ==
          b.find_all(f'tr[data-id="{tid}"]'), "the filter kept another row")
    b.clear(b.wait("#name-filter"))
    b.type(b.wait("#name-filter"), "no such name")
    b.wait_for(lambda: not b.find_all("#tokens-body tr[data-id]"),
               "no rows for a name that matches none")
    b.clear(b.wait("#name-filter"))
    b.type(b.wait("#name-filter"), "ui-made")
    return tid


def page_ids(b):
    return b.run("return [...document.querySelectorAll("
                 "'#tokens-body tr[data-id]')].map(r => r.dataset.id)")


def api_two_pages(srv, path):
    """The API's first page of path (per_page=10 and its filters) and the
    one after it: the first page's answer and each page's IDs."""
    api1 = srv.request("GET", path, key="admin").json
    after = api1["data"][-1]["id"]
    api2 = srv.request("GET", f"{path}&after={after}", key="admin").json
    return (api1, [x["id"] for x in api1["data"]],
            [x["id"] for x in api2["data"]])


def page_back_and_forth(b, rows, want1, want2, prev, nxt):
    """A pager of two pages: the first, next to the second (next disabled
    there), previous to the first again (previous disabled there)."""
    b.wait_for(lambda: rows(b) == want1, "the first page")
    check(b.run(f"return document.getElementById('{prev}').disabled"),
          "previous enabled on the first page")
    b.click(b.wait(f"#{nxt}"))
    b.wait_for(lambda: rows(b) == want2, "the second page")
    check(b.run(f"return document.getElementById('{nxt}').disabled"),
          "next enabled on the last page")
    b.click(b.wait(f"#{prev}"))
    b.wait_for(lambda: rows(b) == want1, "the first page again")


def flow_pages(b, srv):
    """Paddle's after cursor, page by page, as the API pages."""
    for i in range(10):
        r = srv.request("POST", "/client-tokens", {"name": f"bulk {i}"},
                        key="admin")
        check(r.status == 201, r)
    b.clear(b.wait("#name-filter"))
    b.select(b.wait("#per-page"), "10")
    _, want1, want2 = api_two_pages(
        srv, "/client-tokens?per_page=10&status=active,revoked")
    check(len(want1) == 10 and len(want2) == 2, (want1, want2))
    page_back_and_forth(b, page_ids, want1, want2, "prev-page", "next-page")
    b.select(b.wait("#per-page"), "50")
    b.wait_for(lambda: len(page_ids(b)) == 12, "all on one page")
    b.type(b.wait("#name-filter"), "ui-made")


def flow_history_revoke(b, srv, shots, tid):
    # Open its history.
    b.click(b.wait(f'tr[data-id="{tid}"] a.open'))
    b.wait("#timeline li")
    check("#/tokens/" + tid in b.url(), b.url())
    types = b.run("return [...document.querySelectorAll('#timeline li')]"
                  ".map(l => l.dataset.eventType)")
    check(types == ["client_token.created"], types)
    check(b.text(b.wait("#detail-name")) == "ui-made <i>one</i>", "name")
    check_csp_enforced(b)

    # Rename: the dialog opens on the name; Enter saves.
    b.click(b.wait("#detail-rename"))
    b.wait_for(lambda: b.focused() == "rename-name", "focus on the name")
    b.clear(b.wait("#rename-name"))
    b.type(b.wait("#rename-name"), "ui-made renamed")
    b.keys("enter")
    b.wait("#timeline li", count=2)
    check(b.text(b.wait("#detail-name")) == "ui-made renamed", "renamed")
    r = srv.request("GET", f"/client-tokens/{tid}", key="admin")
    check(r.json["data"]["name"] == "ui-made renamed" and
          r.json["data"]["description"] == "made in the browser", r)

    # Revoke, with the keyboard: the dialog opens on Cancel; Escape backs
    # out, then Tab to Revoke and Enter confirms.
    b.click(b.wait("#detail-revoke"))
    b.wait_for(lambda: b.run("return document.getElementById('confirm')"
                             ".open"), "the confirmation")
    check(b.focused() == "confirm-cancel", b.focused())
    b.keys("escape")
    b.wait_for(lambda: not b.run("return document.getElementById('confirm')"
                                 ".open"), "the dialog to close")
    r = srv.request("GET", f"/client-tokens/{tid}", key="admin")
    check(r.json["data"]["status"] == "active", "Escape revoked it")
    b.click(b.wait("#detail-revoke"))
    b.wait_for(lambda: b.focused() == "confirm-cancel", "focus on Cancel")
    b.keys("tab")
    check(b.focused() == "confirm-ok", b.focused())
    b.keys("enter")
    b.wait("#timeline li", count=3)
    types = b.run("return [...document.querySelectorAll('#timeline li')]"
                  ".map(l => l.dataset.eventType)")
    check(types == ["client_token.created", "client_token.updated",
                    "client_token.revoked"], types)
    check(b.text(b.wait("#detail-status")) == "revoked", "status shown")
    check(not b.find_all("#detail-revoke"), "revoke offered again")
    b.screenshot(os.path.join(shots, "history.png"))
    # Through the API: the revoke happened.
    r = srv.request("GET", f"/client-tokens/{tid}", key="admin")
    check(r.status == 200 and r.json["data"]["status"] == "revoked" and
          r.json["data"]["revoked_at"], r)


def check_csp_enforced(b):
    """The browser applies the policy: another origin is refused, and an
    inline script does not run."""
    got = b.run_async(
        "const done = arguments[arguments.length - 1];"
        "document.addEventListener('securitypolicyviolation',"
        " e => done(e.effectiveDirective), {once: true});"
        "fetch('http://127.0.0.2:9/steal').catch(() => {});")
    check(got == "connect-src", f"fetch elsewhere: {got}")
    ran = b.run("const s = document.createElement('script');"
                "s.textContent = 'window.__inline = 1';"
                "document.head.append(s); s.remove();"
                "return window.__inline === 1;")
    check(ran is False, "an inline script ran")


def flow_hostile_history(b, srv, hostile):
    b.get(srv.url + "/ui/#/tokens/" + hostile)
    b.wait("#timeline li")
    got = b.run("return [document.getElementById('detail-name').textContent,"
                "...[...document.querySelectorAll('#timeline .ev-name')]"
                ".map(e => e.textContent)]")
    check(got == [XSS_NAME, XSS_NAME], got)
    check(XSS_DESC in b.run("return document.getElementById('view')"
                            ".textContent"), "description not shown as text")
    no_injection(b, "history")


def flow_destinations(b, srv, shots, hostile_dest):
    b.get(srv.url + "/ui/#/destinations")
    b.wait(f'tr[data-id="{hostile_dest}"]')
    desc = b.run(f"return document.querySelector('tr[data-id=\"{hostile_dest}"
                 f"\"] .desc').textContent")
    check(desc == XSS_DEST, desc)
    no_injection(b, "destinations")
    # An error shows Paddle's detail and the request ID.
    b.type(b.wait("#dest-description"), "loopback")
    b.type(b.wait("#dest-url"), "http://127.0.0.1:9/hooks")
    b.click(b.wait("#dest-form button[type=submit]"))
    b.wait("#error-rid")
    detail = b.text(b.wait("#error-detail"))
    rid = b.text(b.wait("#error-rid"))
    check("invalid_field" in detail and "HTTP 400" in detail, detail)
    check(UUID_RE.match(rid), rid)
    check(rid in srv.output(), "the request ID is not in the server's log")
    # Create: the secret is shown, with a copy button.
    b.clear(b.wait("#dest-description"))
    b.clear(b.wait("#dest-url"))
    b.type(b.wait("#dest-description"), "ui-dest")
    b.type(b.wait("#dest-url"), "https://example.com/ctkn-hooks")
    b.click(b.wait("#dest-form button[type=submit]"))
    b.wait("#dest-secret .secret-value")
    secret = b.text(b.wait("#dest-secret .secret-value"))
    check(b.find_all("#dest-secret button.copy"), "no copy button")
    copy = b.wait("#dest-secret button.copy")
    b.click(copy)
    # Headless chromium may refuse the clipboard: the secret is then
    # selected for Ctrl+C instead.
    b.wait_for(lambda: b.text(copy) in ("Copied", "Selected: press Ctrl+C"),
               "the copy button to answer")
    print("copy button:", b.text(copy), flush=True)
    if b.text(copy) != "Copied":
        check(b.run("return getSelection().toString()") == secret,
              "the secret is not selected")
    lst = srv.request("GET", "/notification-settings", key="admin").json
    mine = [d for d in lst["data"] if d["description"] == "ui-dest"]
    check(len(mine) == 1 and mine[0]["endpoint_secret_key"] == secret, lst)
    did = mine[0]["id"]
    b.wait(f'tr[data-id="{did}"]')
    b.screenshot(os.path.join(shots, "destinations.png"))
    # Pause, resume, delete (confirmed).
    for want in (False, True):
        b.click(b.wait(f'tr[data-id="{did}"] button.toggle'))
        label = "Resume" if not want else "Pause"
        b.wait_for(lambda: b.run(
            f"const t = document.querySelector('tr[data-id=\"{did}\"] "
            f"button.toggle'); return t && t.textContent") == label,
            f"the button to read {label}")
        d = srv.request("GET", f"/notification-settings/{did}", key="admin")
        check(d.json["data"]["active"] is want, d)
    b.click(b.wait(f'tr[data-id="{did}"] button.delete'))
    b.wait_for(lambda: b.run("return document.getElementById('confirm')"
                             ".open"), "the confirmation")
    b.click(b.wait("#confirm-ok"))
    b.wait_for(lambda: not b.find_all(f'tr[data-id="{did}"]'), "row gone")
    r = srv.request("GET", f"/notification-settings/{did}", key="admin")
    check(r.status == 404, r)


def flow_health(b, srv, shots, partitions):
    b.get(srv.url + "/ui/#/health")
    b.wait("#health tbody tr", count=partitions)
    check(b.text(b.wait("#health-status")) == "ready", "status")
    first = b.text(b.wait("#health-at"))
    b.wait_for(lambda: b.text(b.wait("#health-at")) != first,
               "the health view to refresh", timeout=15)
    ends = b.run("return [...document.querySelectorAll('#health tbody tr')]"
                 ".map(r => r.children[1].textContent)")
    h = srv.request("GET", "/healthz", key=None).json["data"]
    check(len(ends) == len(h["partitions"]), (ends, h))
    check(not b.find_all("#health-callouts"), "a callout with nothing wrong")
    b.screenshot(os.path.join(shots, "health.png"))


def flow_quarantine(b, srv, env, shots):
    """A record the projector cannot use is quarantined: /healthz counts
    it on its partition, and the health view calls it out."""
    env.raw(1, "poison", b"\xff\xfe garbage", "client_token.created", "1")

    def counted():
        h = srv.request("GET", "/healthz", key=None).json["data"]
        return h.get("quarantined") == 1 and h
    h = wait_until(counted, 30, "/healthz counts the quarantined record")
    check([p["quarantined"] for p in h["partitions"]] == [0, 1], h)
    check(h["status"] == "ready", h)
    b.get(srv.url + "/ui/#/health")
    b.wait("#callout-quarantined", timeout=15)
    text = b.text(b.wait("#callout-quarantined"))
    check("1 record" in text and "partition 1: 1" in text and
          "ctkn quarantine" in text, text)
    check(not b.find_all("#callout-paused"), "paused called out")
    cells = b.run("return [...document.querySelectorAll('#health tbody tr')]"
                  ".map(r => r.querySelector('[data-label=Quarantined]')"
                  ".textContent)")
    check(cells == ["0", "1"], cells)
    b.screenshot(os.path.join(shots, "health-quarantine.png"))


def flow_paused(b, srv, env):
    """A record of a newer schema pauses its partition: the health view
    calls it out (and /healthz is 503, which the view still shows)."""
    env.raw(0, "future", b"\x0a\x01x", "client_token.created", "99")
    wait_until(lambda: srv.request("GET", "/healthz", key=None).json["data"]
               ["status"] == "paused", 30, "/healthz says paused")
    b.get(srv.url + "/ui/#/health")
    b.wait("#callout-paused", timeout=15)
    text = b.text(b.wait("#callout-paused"))
    check("partition 0 " in text and "newer schema" in text, text)
    check(b.text(b.wait("#health-status")) == "paused", "status")
    check(b.find_all("#callout-quarantined"), "the quarantine callout left")


def wait_until(pred, timeout, what, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        check(time.monotonic() < deadline, f"timed out after {timeout}s: "
              f"{what}")
        time.sleep(every)


class HostileReceiver:
    """A webhook receiver whose answers carry markup: /ok answers 200,
    /bad 503, each with XSS_BODY as text/html."""

    def __init__(self):
        self.count = {}
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                rx.count[self.path] = rx.count.get(self.path, 0) + 1
                body = XSS_BODY.encode()
                self.send_response(200 if self.path == "/ok" else 503)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def delivery_rows(b):
    return b.run("return [...document.querySelectorAll("
                 "'#deliveries-body tr[data-id]')].map(r => r.dataset.id)")


def notify(env, dkey):
    """One `ctkn notify` run: what is due is sent, and it exits."""
    r = env.ctkn("notify", "--secret-key-file", dkey, "--group",
                 "g-" + env.topic, "--retry-initial", "60s", *ALLOW_LO,
                 db=env.path("notify-db"))
    check(r.rc == 0, f"notify: {r}")


def deliveries_setup(srv, env, dkey, hostile_dest, rx):
    """Two destinations on rx and one `ctkn notify` run: a delivered
    notification (/ok) and one that needs a retry (/bad), both answered
    with XSS_BODY. Returns their IDs."""
    # The example.com destination would be tried too: pause it.
    r = srv.request("PATCH", f"/notification-settings/{hostile_dest}",
                    {"active": False}, key="admin")
    check(r.status == 200, r)
    dests = {}
    for path in ("/ok", "/bad"):
        d = env.ok("destination", "add", "--url", rx.url(path), "--events",
                   "client_token.created", "--description", "rx " + path,
                   "--secret-key-file", dkey, *ALLOW_LO).json["data"]
        dests[path] = d["id"]
    # Six tokens: twelve notifications, two pages of ten.
    for i in range(6):
        r = srv.request("POST", "/client-tokens", {"name": f"hooked {i}"},
                        key="admin")
        check(r.status == 201, r)
    notify(env, dkey)
    check(rx.count == {"/ok": 6, "/bad": 6}, rx.count)
    ids = {}
    for path, want in (("/ok", "delivered"), ("/bad", "needs_retry")):
        def seen():
            r = srv.request("GET", "/notifications?notification_setting_id="
                            + dests[path], key="admin")
            d = r.json["data"] if r.status == 200 else []
            return len(d) == 6 and all(x["status"] == want for x in d) and \
                d[0]["id"]
        ids[path] = wait_until(seen, 30, f"the replica sees {path} {want}")
    return ids["/ok"], ids["/bad"]


def flow_delivery_pages(b, srv):
    """Paddle's after cursor over the notifications, as the API pages."""
    api1, want1, want2 = api_two_pages(srv, "/notifications?per_page=10")
    check(len(want1) == 10 and len(want2) == 2 and
          api1["meta"]["pagination"]["has_more"], (want1, want2))
    b.select(b.wait("#ntf-per-page"), "10")
    page_back_and_forth(b, delivery_rows, want1, want2, "ntf-prev", "ntf-next")
    b.select(b.wait("#ntf-per-page"), "50")
    b.wait_for(lambda: delivery_rows(b) == want1 + want2, "all on one page")


def flow_deliveries(b, srv, env, dkey, shots, ok_id, bad_id):
    b.get(srv.url + "/ui/#/deliveries")
    b.wait(f'tr[data-id="{ok_id}"]')
    b.wait(f'tr[data-id="{bad_id}"]')
    # The status filter asks the API for that status only.
    for status, shown, hidden in (("delivered", ok_id, bad_id),
                                  ("needs_retry", bad_id, ok_id)):
        b.select(b.wait("#ntf-status"), status)
        b.wait_for(lambda: shown in delivery_rows(b) and
                   hidden not in delivery_rows(b), f"only {status}")
        got = b.run("return [...document.querySelectorAll("
                    "'#deliveries-body .ntf-status')].map(e => e.textContent)")
        check(got and set(got) == {status}, got)
    b.select(b.wait("#ntf-status"), "")
    b.wait_for(lambda: {ok_id, bad_id} <= set(delivery_rows(b)), "all again")
    flow_delivery_pages(b, srv)
    # Replay is offered for delivered and failed ones only.
    check(b.find_all(f'tr[data-id="{ok_id}"] button.replay'), "no replay")
    check(not b.find_all(f'tr[data-id="{bad_id}"] button.replay'),
          "replay offered for a notification still being retried")
    b.screenshot(os.path.join(shots, "deliveries.png"))

    # The attempt logs: the receiver's body is text.
    b.click(b.wait(f'tr[data-id="{bad_id}"] a.logs'))
    b.wait("#ntf-logs tbody tr")
    check("#/deliveries/" + bad_id in b.url(), b.url())
    row = b.run("const r = document.querySelector('#ntf-logs tbody tr');"
                "return [r.querySelector('[data-label=Response]').textContent,"
                "r.querySelector('[data-label=\"Content type\"]')"
                ".textContent, r.querySelector('pre.body').textContent]")
    check(row == ["503", "text/html", XSS_BODY], row)
    no_injection(b, "delivery logs")
    check(not b.find_all("#ntf-replay"), "replay offered for needs_retry")

    # Replay, confirmed, from the delivered one's page.
    b.get(srv.url + "/ui/#/deliveries/" + ok_id)
    b.wait("#ntf-logs tbody tr")
    body = b.text(b.wait("#ntf-logs pre.body"))
    check(body == XSS_BODY, body)
    no_injection(b, "delivery logs (200)")
    b.screenshot(os.path.join(shots, "delivery.png"))
    b.click(b.wait("#ntf-replay"))
    b.wait_for(lambda: b.run("return document.getElementById('confirm')"
                             ".open"), "the confirmation")
    check(b.focused() == "confirm-cancel", b.focused())
    b.keys("escape")
    b.wait_for(lambda: not b.run("return document.getElementById('confirm')"
                                 ".open"), "the dialog to close")
    check(not b.find_all("#replayed-id"), "Escape replayed it")
    b.click(b.wait("#ntf-replay"))
    b.wait_for(lambda: b.run("return document.getElementById('confirm')"
                             ".open"), "the confirmation")
    b.click(b.wait("#confirm-ok"))
    new = b.text(b.wait("#replayed-id"))
    check(re.match(r"^ntf_[0-9a-z]{26}$", new) and new != ok_id, new)
    # Through the API: a new notification of the same event, a replay.
    n = wait_until(lambda: (lambda r: r.status == 200 and r.json["data"])(
        srv.request("GET", f"/notifications/{new}", key="admin")), 30,
        "the replay's notification")
    old = srv.request("GET", f"/notifications/{ok_id}", key="admin")
    check(n["origin"] == "replay" and n["type"] == old.json["data"]["type"]
          and n["notification_setting_id"] ==
          old.json["data"]["notification_setting_id"], n)
    # Delivered, the replay is not replayed again (Paddle: origin event
    # only): its page offers no Replay, and the API refuses it.
    notify(env, dkey)
    wait_until(lambda: srv.request("GET", f"/notifications/{new}",
                                   key="admin").json["data"]["status"] ==
               "delivered", 30, "the replay delivered")
    b.get(srv.url + "/ui/#/deliveries/" + new)
    b.wait("#ntf-logs tbody tr")
    check(not b.find_all("#ntf-replay"), "replay offered for a replay")
    r = srv.request("POST", f"/notifications/{new}/replay", key="admin")
    check(r.status == 400 and r.json["error"]["code"] ==
          "notification_replay_invalid_origin_type", r)
    # An error shows Paddle's detail and the request ID.
    b.get(srv.url + "/ui/#/deliveries/ntf_01kbp9s2c0a6r7k2ge1mj1ntf9")
    b.wait("#error-rid")
    check("not_found" in b.text(b.wait("#error-detail")), "404 detail")
    check(UUID_RE.match(b.text(b.wait("#error-rid"))), "request ID")
    return new


def flow_deliveries_read_only(b, srv, env, ok_id):
    """A key with notification_setting.read only (a key on the log, whose
    permissions the page reads from GET /api-keys/{its id}) sees the
    deliveries and their logs but no Replay."""
    b.click(b.wait("#signout"))
    b.wait("#key")
    k = env.ok("apikey", "create", "--name", "ui hooks reader",
               "--permissions", "notification_setting.read").json["data"]
    wait_until(lambda: srv.request("GET", f"/api-keys/{k['id']}",
                                   key=f"Bearer {k['key']}").status == 200,
               10, "the log key arrives")
    # Signed out on #/tokens: the sign-in keeps the view asked for.
    b.get(srv.url + "/ui/#/deliveries")
    b.type(b.wait("#key"), k["key"] + "\ue007")
    b.wait(f'tr[data-id="{ok_id}"]')
    perms = b.text(b.wait("#perms"))
    check(perms == "Key: notification_setting.read", perms)
    check(not b.find_all("button.replay"), "a read-only key sees Replay")
    b.click(b.wait(f'tr[data-id="{ok_id}"] a.logs'))
    b.wait("#ntf-logs tbody tr")
    check(not b.find_all("#ntf-replay"), "a read-only key sees Replay")
    # The server refuses it regardless.
    r = srv.request("POST", f"/notifications/{ok_id}/replay",
                    key=f"Bearer {k['key']}")
    check(r.status == 403 and r.json["error"]["code"] == "forbidden", r)


def check_key_kept(b, srv, key):
    k = srv.keys[key]
    got = b.run("return [JSON.stringify(localStorage), location.href,"
                "document.cookie, sessionStorage.getItem('ctkn.apiKey'),"
                "performance.getEntriesByType('resource')"
                ".map(e => e.name).join(' '), document.referrer]")
    local, href, cookie, session, urls, referrer = got
    check(local == "{}", f"localStorage holds {local}")
    check(k not in href and k not in urls and k not in cookie, "key leaked")
    check(session == k, "the key is not in sessionStorage")
    check(k not in srv.output(), "the key is in the server's log")
    check(referrer == "", referrer)


def flow_phone(b, srv, shots, ntf_id):
    b.size(390, 844)
    b.get(srv.url + "/ui/#/tokens")
    b.wait("#tokens-body tr")
    w = b.run("return [document.documentElement.scrollWidth, innerWidth]")
    check(w[0] <= w[1], f"wider than a phone: {w}")
    b.screenshot(os.path.join(shots, "tokens-phone.png"))
    for view, css in (("deliveries", f'tr[data-id="{ntf_id}"]'),
                      ("deliveries/" + ntf_id, "#ntf-logs tbody tr"),
                      ("health", "#health tbody tr")):
        b.get(srv.url + "/ui/#/" + view)
        b.wait(css)
        w = b.run("return [document.documentElement.scrollWidth, "
                  "innerWidth]")
        check(w[0] <= w[1], f"#/{view} wider than a phone: {w}")
    b.screenshot(os.path.join(shots, "health-phone.png"))
    b.size(1280, 800)


def flow_read_only(b, srv):
    b.click(b.wait("#signout"))
    b.wait("#key")
    check(b.run("return sessionStorage.getItem('ctkn.apiKey')") is None,
          "sign-out left the key")
    # An unknown key: Paddle's error, and nothing kept.
    b.type(b.wait("#key"), "ctkn_apikey_" + "A" * 43 + "\ue007")
    b.wait("#error-rid")
    check("invalid_token" in b.text(b.wait("#error-detail")), "bad key")
    check(b.run("return sessionStorage.getItem('ctkn.apiKey')") is None,
          "an unknown key was kept")
    check(b.find_all("#nav[hidden]"), "signed in with an unknown key")
    sign_in(b, srv, "reader")
    perms = b.text(b.wait("#perms"))
    check("client_token.read" in perms and "write" not in perms, perms)
    check(not b.find_all("#create-form") and not b.find_all("button.revoke")
          and not b.find_all("button.rename"), "write controls shown")
    b.get(srv.url + "/ui/#/deliveries")
    b.wait_for(lambda: "cannot read notifications" in b.run(
        "return document.getElementById('view').textContent"),
        "deliveries refused to a key without notification_setting.read")
    b.get(srv.url + "/ui/#/tokens")
    b.wait("#tokens-body tr")
    b.click(b.find_all("#tokens-body a.open")[0])
    b.wait("#timeline li")
    check(not b.find_all("#detail-revoke"), "a read-only key sees revoke")
    check_key_kept(b, srv, "reader")


def flow_log_key(b, srv, env):
    """A read-only key on the log (issue #14): the page learns its
    permissions from GET /api-keys/{its own id} and offers no write."""
    b.click(b.wait("#signout"))
    b.wait("#key")
    k = env.ok("apikey", "create", "--name", "ui reader", "--permissions",
               "client_token.read").json["data"]
    deadline = time.monotonic() + 10
    while srv.request("GET", f"/api-keys/{k['id']}",
                      key=f"Bearer {k['key']}").status != 200:
        check(time.monotonic() < deadline, "the log key never arrived")
        time.sleep(0.05)
    before = srv.output().count('"path":"/client-tokens/probe"')
    b.get(srv.url + "/ui/")
    b.wait("#key")
    b.wait_for(lambda: b.focused() == "key", "focus on the key field")
    b.keys(*k["key"], "enter")
    b.wait("#tokens-body tr")
    perms = b.text(b.wait("#perms"))
    check(perms == "Key: client_token.read", perms)
    check(not b.find_all("#create-form") and not b.find_all("button.revoke")
          and not b.find_all("button.rename"), "write controls shown")
    check(srv.output().count('"path":"/client-tokens/probe"') == before,
          "a log key's permissions were probed, not read")
    check(f'"path":"/api-keys/{k["id"]}"' in srv.output(),
          "GET /api-keys/{own id} was not asked")


def test_browser():
    check(webdriver.available(),
          "no /usr/bin/chromium or /usr/bin/chromedriver: "
          "run scripts/install-deps")
    env = Env(name="uibrowser", partitions=2)
    dkey = deploy_key(env)
    srv = Server(env, keys=KEYS, args=("--secret-key-file", dkey))
    b = None
    rx = HostileReceiver()
    try:
        shots = shots_dir(env)
        r = srv.request("POST", "/client-tokens",
                        {"name": XSS_NAME, "description": XSS_DESC},
                        key="admin")
        check(r.status == 201, r)
        hostile = r.json["data"]["id"]
        r = srv.request("POST", "/notification-settings", {
            "description": XSS_DEST, "type": "url",
            "destination": "https://example.com/x?<script>alert(5)</script>",
            "subscribed_events": ["client_token.created"]}, key="admin")
        check(r.status == 201, r)
        hostile_dest = r.json["data"]["id"]
        b = webdriver.Browser(free_port(), env.path("chromedriver.log"))
        r = srv.request("GET", "/ui/", key=None)
        check_ui_headers(r)
        sign_in(b, srv, "admin")
        tid = flow_tokens(b, srv, shots, hostile)
        flow_pages(b, srv)
        flow_history_revoke(b, srv, shots, tid)
        flow_hostile_history(b, srv, hostile)
        flow_destinations(b, srv, shots, hostile_dest)
        flow_health(b, srv, shots, 2)
        flow_quarantine(b, srv, env, shots)
        ok_id, bad_id = deliveries_setup(srv, env, dkey, hostile_dest, rx)
        flow_deliveries(b, srv, env, dkey, shots, ok_id, bad_id)
        flow_phone(b, srv, shots, ok_id)
        check_key_kept(b, srv, "admin")
        flow_read_only(b, srv)
        flow_log_key(b, srv, env)
        flow_deliveries_read_only(b, srv, env, ok_id)
        # The server enforces it regardless of the page.
        r = srv.request("PATCH", f"/client-tokens/{hostile}",
                        {"status": "revoked"}, key="reader")
        check(r.status == 403 and r.json["error"]["code"] == "forbidden", r)
        flow_paused(b, srv, env)
        no_injection(b, "the end")
    except Exception:
        if b is not None:  # what the page showed when it failed
            try:
                b.screenshot(os.path.join(shots_dir(env), "failure.png"))
                print("page text:", b.run("return document.body.innerText"))
            except Exception as e:  # the browser may be gone
                print("no failure screenshot:", e)
        raise
    finally:
        if b is not None:
            b.quit()
        rx.close()
        srv.stop()
        env.close()


def test_browser_rate_limited():
    """Under --rate-limit 1 the sign-in's probes meet 429s, which say
    nothing of a permission (the limit is checked first): a read-only
    key must still be offered no write."""
    check(webdriver.available(), "no chromium: run scripts/install-deps")
    env = Env(name="uirate", partitions=1)
    srv = Server(env, keys=KEYS, args=("--rate-limit", "1"))
    b = None
    try:
        b = webdriver.Browser(free_port(), env.path("chromedriver.log"))
        b.get(srv.url + "/ui/")
        b.wait("#key")
        b.type(b.wait("#key"), srv.keys["reader"] + "\ue007")
        b.wait_for(lambda: b.text(b.wait("#perms")) != "", "the key's "
                   "permissions", timeout=40)
        perms = b.text(b.wait("#perms"))
        check(perms == "Key: client_token.read", perms)
        b.wait_for(lambda: b.find_all("#tokens-body tr") or
                   b.find_all("#error-detail"), "the list or an error")
        check(not b.find_all("#create-form") and
              not b.find_all("button.revoke"), "write offered under 429s")
        check('"status":429' in srv.output(), "no 429 was met")
    finally:
        if b is not None:
            b.quit()
        srv.stop()
        env.close()


if __name__ == "__main__":
    main([test_files_and_headers, test_history_route, test_browser,
          test_browser_rate_limited])
