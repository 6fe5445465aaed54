"""The console's deployments in a real browser: the history shows a deployment by its id, its
state and each component's outcome. Usage: deployments.py LOGIN_URL DEPLOYMENT_ID STATE
EXPECTED_OUTCOME SCREENSHOT_DIR."""

import json
import os
import sys

from cdp import Browser


def main(login_url, deployment, state, outcome, shots):
    row = f"document.querySelector('#deployments tr[data-deployment={json.dumps(deployment)}]')"
    with Browser() as browser:
        browser.open(login_url)
        browser.wait(f"{row} !== null")
        cells = browser.eval(f"Array.from({row}.children).map((c) => c.innerText)")
        assert cells[1] == state, cells
        assert outcome in cells[4], cells
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "deployments.png"))
    print("ok")


if __name__ == "__main__":
    main(*sys.argv[1:6])
