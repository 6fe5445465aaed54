"""The console's deployments in a real browser: the history shows a deployment by its id and
state; its page shows the steps it went through, each component's outcome and, for a failed one,
how it failed and why. Usage: deployments.py LOGIN_URL DEPLOYMENT_ID STATE EXPECTED_TEXT
SCREENSHOT_DIR, where EXPECTED_TEXT is in the row or the deployment's facts."""

import json
import os
import sys

from cdp import Browser


def main(login_url, deployment, state, outcome, shots):
    row = f"document.querySelector('#deployments tr[data-deployment={json.dumps(deployment)}]')"
    with Browser() as browser:
        browser.open(login_url)
        browser.goto(f"#deployments/{deployment}")
        browser.wait(f"{row} !== null")
        cells = browser.eval(f"Array.from({row}.children).map((c) => c.innerText)")
        assert cells[1] == state, cells
        browser.wait("document.querySelectorAll('#deployment-progress tr').length > 2")
        facts = browser.text("#deployment-facts")
        assert state in facts, facts
        assert outcome in cells[4] or outcome in facts, (cells, facts)
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "deployments.png"))
    print("ok")


if __name__ == "__main__":
    main(*sys.argv[1:6])
