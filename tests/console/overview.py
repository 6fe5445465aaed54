"""The console's overview in a real browser: log in with a `turf console` link, see the host, its
listeners, live figures and components, log out and be refused. Usage: overview.py LOGIN_URL
SCREENSHOT_DIR. Exits non-zero, saying why, if anything is not as expected."""

import os
import sys

from cdp import Browser


def main(login_url, shots):
    origin = login_url.split("/login")[0]
    with Browser() as browser:
        browser.open(origin + "/")
        assert "not logged in" in browser.text("body"), browser.text("body")
        browser.open(login_url)
        browser.wait("document.querySelectorAll('#overview-components tr').length > 1")
        here = browser.eval("location.href")
        assert "key=" not in here, f"the session key stays in the address bar: {here}"
        host = browser.text("#host")
        assert "TurfCore" in host, host
        components = browser.text("#overview-components")
        assert "aws.greengrass.ShadowManager" in components and "RUNNING" in components, components
        listeners = browser.text("#overview-listeners")
        assert "Devices (MQTT, mutual TLS)" in listeners and "Discovery" in listeners, listeners
        # The rates need two samples: wait for the second refresh.
        browser.wait("!document.getElementById('overview-live').innerText.includes('…')", timeout=10)
        live = browser.text("#overview-live")
        assert "Connections / sessions" in live and "per second" in live and "Shadow sync" in live, live
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "overview.png"))
        browser.click("#logout")
        browser.wait("document.body.innerText.includes('logged out')")
        browser.open(origin + "/")
        assert "not logged in" in browser.text("body"), "the session outlived its logout"
        browser.open(origin + "/console.js")
        assert "not logged in" in browser.text("body"), "the script is behind the login too"
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
