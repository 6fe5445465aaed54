"""Headless Chromium driven over the DevTools protocol on pipes (`--remote-debugging-pipe`).

Standard library only: the protocol is JSON messages separated by NUL bytes on two pipes
(Chromium reads fd 3, writes fd 4). Every wait is bounded.
"""

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time


class BrowserError(Exception):
    """A protocol error, a JavaScript exception, or a wait that ran out."""


def chromium_path():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise BrowserError("no chromium found (make test installs Debian's chromium)")


class Browser:
    """One headless Chromium with one page."""

    def __init__(self, width=1280, height=900):
        self.profile = tempfile.mkdtemp(prefix="turf-console-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Chromium's ends must become fds 3 and 4 in the child; moved above 10 first, so the
        # dup2 onto 3 and 4 cannot overwrite one with the other.
        high_r = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        high_w = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def onto_3_and_4():
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.process = subprocess.Popen(
            [
                chromium_path(), "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
                "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank",
            ],
            pass_fds=(3, 4, high_r, high_w),
            preexec_fn=onto_3_and_4,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(high_r)
        os.close(high_w)
        self._buffer = b""
        self._next_id = 0
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _send(self, message):
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")

    def _receive(self, deadline):
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError("Chromium closed the pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _call(self, method, params=None, session=None, timeout=20):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def call(self, method, params=None, timeout=20):
        """A DevTools command on the page."""
        return self._call(method, params, self.session, timeout)

    def open(self, url):
        """Navigates and waits until the document has loaded."""
        self.call("Page.navigate", {"url": url})
        self.wait("document.readyState === 'complete' && location.href !== 'about:blank'")

    def goto(self, page):
        """Shows a console page (`#components`, `#devices/Lamp`, ...) of the open document."""
        self.eval(f"location.hash = {json.dumps(page)}")

    def set_value(self, selector, value):
        """Sets a form field's value."""
        self.eval(f"document.querySelector({json.dumps(selector)}).value = {json.dumps(value)}")

    def eval(self, expression):
        """The value of a JavaScript expression (awaited if it is a promise)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait(self, condition, timeout=20):
        """Waits until the JavaScript `condition` is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.eval(f"Boolean({condition})"):
                return
            time.sleep(0.05)
        raise BrowserError(f"timed out after {timeout} s waiting for {condition}")

    def text(self, selector):
        """The text of the first element matching `selector`."""
        return self.eval(f"(document.querySelector({json.dumps(selector)}) || {{}}).innerText || ''")

    def click(self, selector):
        """Clicks the first element matching `selector`."""
        self.eval(f"document.querySelector({json.dumps(selector)}).click()")

    def screenshot(self, path):
        """Saves the page as a PNG."""
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})["data"]
        with open(path, "wb") as out:
            out.write(base64.b64decode(data))

    def close(self):
        try:
            self._call("Browser.close", timeout=5)
        except BrowserError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
