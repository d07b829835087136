"""A small W3C WebDriver client over Debian's /usr/bin/chromedriver and
/usr/bin/chromium (headless), in the standard library only: the protocol
Selenium speaks, without Selenium. The browser starts with a fresh
profile and without background networking, so it talks to nothing but
the pages the test opens.
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

CHROMEDRIVER = os.environ.get("CTKN_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROMIUM = os.environ.get("CTKN_CHROMIUM", "/usr/bin/chromium")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
KEYS = {"tab": "\ue004", "enter": "\ue007", "escape": "\ue00c",
        "shift": "\ue008"}


class WebDriverError(Exception):
    def __init__(self, status, value):
        self.status = status
        self.error = value.get("error", "") if isinstance(value, dict) else ""
        self.message = value.get("message", "") if isinstance(value, dict) \
            else str(value)
        super().__init__(f"{status} {self.error}: {self.message[:500]}")


def available():
    return os.access(CHROMEDRIVER, os.X_OK) and os.access(CHROMIUM, os.X_OK)


class Browser:
    def __init__(self, port, log, width=1280, height=800):
        self.profile = tempfile.mkdtemp(prefix="ctkn-chromium-")
        self.base = f"http://127.0.0.1:{port}"
        env = dict(os.environ, SE_OFFLINE="true")
        self.proc = subprocess.Popen(
            [CHROMEDRIVER, f"--port={port}", f"--log-path={log}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.quit()
                raise RuntimeError("chromedriver did not start")
            time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}"]
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}}}}
        try:
            self.sid = self._call("POST", "/session", caps)["sessionId"]
        except Exception:
            self.quit()
            raise

    def _call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base + path, data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            try:
                value = json.loads(e.read())["value"]
            except ValueError:
                value = {}
            raise WebDriverError(e.code, value) from None

    def cmd(self, method, path, body=None):
        if body is None and method == "POST":
            body = {}
        return self._call(method, f"/session/{self.sid}{path}", body)

    # ---- navigation and scripts ---------------------------------------

    def get(self, url):
        self.cmd("POST", "/url", {"url": url})

    def url(self):
        return self.cmd("GET", "/url")

    def run(self, script, *args):
        return self.cmd("POST", "/execute/sync",
                        {"script": script, "args": list(args)})

    def run_async(self, script, *args):
        """script calls arguments[arguments.length - 1] with its result."""
        return self.cmd("POST", "/execute/async",
                        {"script": script, "args": list(args)})

    def size(self, width, height):
        self.cmd("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.cmd("GET", "/screenshot")))

    def alert_text(self):
        """The text of an open alert, or None."""
        try:
            return self.cmd("GET", "/alert/text")
        except WebDriverError as e:
            if e.error == "no such alert":
                return None
            raise

    # ---- elements -----------------------------------------------------

    def find_all(self, css):
        return [e[ELEMENT] for e in self.cmd(
            "POST", "/elements", {"using": "css selector", "value": css})]

    def wait(self, css, timeout=20, count=1):
        """The first element matching css once at least count do."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find_all(css)
            if len(found) >= count:
                return found[0]
            if time.monotonic() > deadline:
                raise AssertionError(f"no element {css!r} after {timeout}s")
            time.sleep(0.1)

    def wait_for(self, fn, what, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def click(self, el):
        self.cmd("POST", f"/element/{el}/click")

    def type(self, el, text):
        self.cmd("POST", f"/element/{el}/value", {"text": text})

    def clear(self, el):
        self.cmd("POST", f"/element/{el}/clear")

    def text(self, el):
        return self.cmd("GET", f"/element/{el}/text")

    def select(self, el, value):
        """Pick the option of a <select> with this value."""
        for opt in self.cmd("POST", f"/element/{el}/elements",
                            {"using": "css selector", "value": "option"}):
            o = opt[ELEMENT]
            if self.cmd("GET", f"/element/{o}/property/value") == value:
                self.click(o)
                return
        raise AssertionError(f"no option {value}")

    def keys(self, *names):
        """Press and release each key (names in KEYS, or characters) on
        whatever has the focus: what a keyboard-only user does."""
        acts = []
        for n in names:
            k = KEYS.get(n, n)
            acts += [{"type": "keyDown", "value": k},
                     {"type": "keyUp", "value": k}]
        self.cmd("POST", "/actions", {"actions": [
            {"type": "key", "id": "keyboard", "actions": acts}]})

    def focused(self):
        return self.run("const a = document.activeElement;"
                        "return a ? (a.id || a.tagName) : null;")

    def quit(self):
        try:
            if getattr(self, "sid", None):
                self._call("DELETE", f"/session/{self.sid}", timeout=20)
        except (OSError, WebDriverError):
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
