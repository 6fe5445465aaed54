"""The console's client devices in a real browser: a registered thing shows as connected with its
address, its page shows the groups that select it and their statements, and a refusal it earned
is listed. Usage: devices.py LOGIN_URL THING DENIED_TOPIC SCREENSHOT_DIR."""

import json
import os
import sys

from cdp import Browser


def main(login_url, thing, denied_topic, shots):
    row = f"document.querySelector('#devices tr[data-thing={json.dumps(thing)}]')"
    with Browser() as browser:
        browser.open(login_url)
        browser.goto("#devices")
        browser.wait(f"{row} !== null && {row}.children[3].innerText === 'yes'")
        cells = browser.eval(f"Array.from({row}.children).map((c) => c.innerText)")
        assert "127.0.0.1" in cells[4], cells
        assert cells[1] == "yes", f"associated: {cells}"
        browser.wait(f"document.getElementById('denials').innerText.includes({json.dumps(denied_topic)})")
        browser.goto(f"#devices/{thing}")
        browser.wait("document.querySelectorAll('#device-access tr').length > 1")
        access = browser.text("#device-access")
        assert f"lamps/{thing}/*" in access, access
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "devices.png"))
    print("ok")


if __name__ == "__main__":
    main(*sys.argv[1:5])
