"""The console's components in a real browser: stop a WebAssembly component and restart it with
the page's buttons, and watch its state and restart count change. Usage: components.py
LOGIN_URL COMPONENT SCREENSHOT_DIR."""

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
        browser.wait(f"{state} === 'RUNNING'")
        before = int(browser.eval(restarts))
        browser.eval(f"{buttons}[1].click()")
        browser.wait(f"{state} === 'FINISHED'")
        browser.eval(f"{buttons}[0].click()")
        browser.wait(f"{state} === 'RUNNING' && Number({restarts}) === {before + 1}")
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "components.png"))
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
