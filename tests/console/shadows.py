"""The console's shadows in a real browser: set a thing's desired state and see the document's new
version, desired state and delta. Usage: shadows.py LOGIN_URL THING DESIRED_JSON SCREENSHOT_DIR."""

import json
import os
import sys

from cdp import Browser


def main(login_url, thing, desired, shots):
    with Browser() as browser:
        browser.open(login_url)
        browser.goto("#shadows")
        browser.wait("document.getElementById('shadow-thing') !== null")
        browser.set_value("#shadow-thing", thing)
        browser.set_value("#shadow-desired", desired)
        browser.click("#shadow-update")
        browser.wait("document.getElementById('shadow-document').innerText.includes('\"version\"')")
        document = json.loads(browser.text("#shadow-document"))
        assert document["state"]["desired"] == json.loads(desired), document
        summary = browser.text("#shadow-summary")
        assert "Version" in summary and "Delta" in summary, summary
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "shadows.png"))
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4])
