"""The console's test client in a real browser: watch what devices publish (a device keeps
publishing on EXPECTED_TOPIC) and publish a message to devices. Usage: messages.py LOGIN_URL
WATCH_FILTER EXPECTED_TOPIC PUBLISH_TOPIC PAYLOAD SCREENSHOT_DIR; the caller checks a device
received PAYLOAD on PUBLISH_TOPIC."""

import json
import os
import sys

from cdp import Browser


def main(login_url, watch_filter, expected_topic, publish_topic, payload, shots):
    with Browser() as browser:
        browser.open(login_url)
        browser.goto("#messages")
        browser.set_value("#watch-target", "local-mqtt")
        browser.set_value("#watch-filter", watch_filter)
        browser.click("#watch-start")
        browser.wait("document.querySelector('#watches li[data-open=\"yes\"]') !== null")
        browser.wait(f"document.querySelector('#messages tr[data-topic={json.dumps(expected_topic)}]') !== null")
        browser.set_value("#msg-target", "local-mqtt")
        browser.set_value("#msg-topic", publish_topic)
        browser.set_value("#msg-payload", payload)
        browser.click("#msg-publish")
        browser.wait("document.getElementById('msg-status').innerText === 'published'")
        os.makedirs(shots, exist_ok=True)
        browser.screenshot(os.path.join(shots, "messages.png"))
        browser.set_value("#msg-topic", "bad/+/topic")
        browser.click("#msg-publish")
        browser.wait("document.getElementById('msg-status').innerText.startsWith('refused:')")
        assert "wildcard" in browser.text("#msg-status") or "invalid" in browser.text("#msg-status"), browser.text("#msg-status")
    print("ok")


if __name__ == "__main__":
    main(*sys.argv[1:7])
