"""The console's overview in a real browser: log in with a `turf console` link, see the host
and its components, log out and be refused. Usage: overview.py LOGIN_URL SCREENSHOT_DIR.
Exits non-zero, saying why, if anything is not as expected."""

import os
import sys

from cdp import Browser


def main(login_url, shots):
    origin = login_url.split("/login")[0]
    with Browser() as browser:
        browser.open(origin + "/")
        assert "not logged in" in browser.text("body"), browser.text("body")
        browser.open(login_url)
        browser.wait("document.querySelectorAll('#components tr').length > 1")
        host = browser.text("#host")
        assert "TurfCore" in host, host
        components = browser.text("#components")
        assert "aws.greengrass.ShadowManager" in components and "RUNNING" in components, components
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "overview.png"))
        browser.click("header form button")
        browser.wait("document.body.innerText.includes('logged out')")
        browser.open(origin + "/")
        assert "not logged in" in browser.text("body"), "the session outlived its logout"
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
