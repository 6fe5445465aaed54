"""The cloud side of shadow sync, as an application using the AWS IoT Device SDK v2's
IotShadowClient: get another thing's shadow and check its reported state (synced up from a core),
then set its desired state and see the update accepted.

Usage: cloud_shadow.py --thing APP ... --target THING --expect-reported JSON --set-desired JSON.
Every wait is bounded. Run by the Rust end-to-end suite (tests/e2e/shadow_sync.rs).
"""

import json
import queue

from awscrt import mqtt
from awsiot import iotshadow

from common import TIMEOUT, arguments, discover_and_connect


def extra(parser):
    parser.add_argument("--target", required=True)
    parser.add_argument("--expect-reported", required=True)
    parser.add_argument("--set-desired", required=True)


def main():
    args = arguments(extra)
    connection = discover_and_connect(args)
    shadow = iotshadow.IotShadowClient(connection)
    thing = args.target
    events = queue.Queue()

    def subscribe(method, request, kind):
        future, _ = method(request=request, qos=mqtt.QoS.AT_LEAST_ONCE, callback=lambda r: events.put((kind, r)))
        future.result(timeout=TIMEOUT)

    subscribe(shadow.subscribe_to_get_shadow_accepted, iotshadow.GetShadowSubscriptionRequest(thing_name=thing), "get-accepted")
    subscribe(shadow.subscribe_to_get_shadow_rejected, iotshadow.GetShadowSubscriptionRequest(thing_name=thing), "get-rejected")
    subscribe(shadow.subscribe_to_update_shadow_accepted, iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), "update-accepted")
    subscribe(shadow.subscribe_to_update_shadow_rejected, iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), "update-rejected")

    def expect(kind, token):
        while True:
            got_kind, response = events.get(timeout=TIMEOUT)
            print(f"{got_kind}: {response}", flush=True)
            if getattr(response, "client_token", None) != token:
                continue
            if got_kind != kind:
                raise SystemExit(f"expected {kind}, got {got_kind}: {response}")
            return response

    shadow.publish_get_shadow(iotshadow.GetShadowRequest(thing_name=thing, client_token="app-get"), mqtt.QoS.AT_LEAST_ONCE).result(timeout=TIMEOUT)
    document = expect("get-accepted", "app-get")
    reported = document.state.reported
    assert reported == json.loads(args.expect_reported), f"reported {reported}"
    print("reported as expected", flush=True)

    desired = iotshadow.ShadowState(desired=json.loads(args.set_desired))
    request = iotshadow.UpdateShadowRequest(thing_name=thing, state=desired, client_token="app-update")
    shadow.publish_update_shadow(request, mqtt.QoS.AT_LEAST_ONCE).result(timeout=TIMEOUT)
    accepted = expect("update-accepted", "app-update")
    assert accepted.state.desired == json.loads(args.set_desired), accepted
    print("desired accepted", flush=True)
    connection.disconnect().result(timeout=TIMEOUT)


if __name__ == "__main__":
    main()
