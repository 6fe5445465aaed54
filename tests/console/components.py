"""The console's components in a real browser: stop a WebAssembly component and restart it with
the page's buttons and watch its state and restart count change; open its details (effective
configuration, log lines), preview a MERGE and deploy it. Usage: components.py LOGIN_URL
COMPONENT SCREENSHOT_DIR; the caller checks the deployed configuration has `"fromConsole": 7`."""

import json
import os
import sys

from cdp import Browser


def cell(component, column):
    row = f"document.querySelector('#components tr[data-component={json.dumps(component)}]')"
    return f"({row} ? {row}.children[{column}].innerText : '')"


def main(login_url, component, shots):
    state, restarts = cell(component, 2), cell(component, 3)
    buttons = f"document.querySelectorAll('#components tr[data-component={json.dumps(component)}] button')"
    with Browser() as browser:
        browser.open(login_url)
        browser.goto("#components")
        browser.wait(f"{state} === 'RUNNING'")
        before = int(browser.eval(restarts))
        browser.eval(f"{buttons}[1].click()")
        browser.wait(f"{state} === 'FINISHED'")
        browser.eval(f"{buttons}[0].click()")
        browser.wait(f"{state} === 'RUNNING' && Number({restarts}) === {before + 1}")

        browser.goto(f"#components/{component}")
        browser.wait("document.getElementById('component-config').innerText.includes('accessControl')")
        browser.wait("document.getElementById('component-log').innerText.includes('probe ready')")
        browser.set_value("#config-merge", '{"fromConsole": 7}')
        browser.click("#config-preview")
        browser.wait("document.getElementById('config-result').innerText.includes('\"fromConsole\": 7')")
        assert "changed: fromConsole" in browser.text("#config-result"), browser.text("#config-result")
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "components.png"))
        browser.click("#config-deploy")
        browser.wait("location.hash.startsWith('#deployments/')")
        deployment = browser.eval("location.hash.split('/')[1]")
        row = f"document.querySelector('#deployments tr[data-deployment={json.dumps(deployment)}]')"
        browser.wait(f"{row} !== null && {row}.children[1].innerText === 'SUCCEEDED'", timeout=60)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
