"""Drive Turf's shadow manager with the AWS IoT Device SDK v2's IotShadowClient over mutual TLS.

After discovery: get a missing shadow (404 with our token), update desired and see the delta
with our token, report the value, and get the document with desired == reported and no delta.
Every wait is bounded. Run by the Rust end-to-end suite (tests/e2e/sdk.rs).
"""

import queue
import sys

from awscrt import mqtt
from awsiot import iotshadow

from common import TIMEOUT, arguments, discover_and_connect


def main():
    args = arguments()
    connection = discover_and_connect(args)
    shadow = iotshadow.IotShadowClient(connection)
    thing = args.thing
    events = queue.Queue()

    def subscribe(method, request, kind):
        future, _ = method(request=request, qos=mqtt.QoS.AT_LEAST_ONCE, callback=lambda r: events.put((kind, r)))
        future.result(timeout=TIMEOUT)

    subscribe(shadow.subscribe_to_get_shadow_accepted, iotshadow.GetShadowSubscriptionRequest(thing_name=thing), "get-accepted")
    subscribe(shadow.subscribe_to_get_shadow_rejected, iotshadow.GetShadowSubscriptionRequest(thing_name=thing), "get-rejected")
    subscribe(shadow.subscribe_to_update_shadow_accepted, iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), "update-accepted")
    subscribe(shadow.subscribe_to_update_shadow_rejected, iotshadow.UpdateShadowSubscriptionRequest(thing_name=thing), "update-rejected")
    subscribe(shadow.subscribe_to_shadow_delta_updated_events, iotshadow.ShadowDeltaUpdatedSubscriptionRequest(thing_name=thing), "delta")

    def expect(kind, token=None):
        while True:
            got_kind, response = events.get(timeout=TIMEOUT)
            print(f"{got_kind}: {response}", flush=True)
            if got_kind == kind and (token is None or getattr(response, "client_token", None) == token):
                return response
            if got_kind.endswith("rejected") and kind != got_kind:
                raise SystemExit(f"unexpected rejection: {response}")

    shadow.publish_get_shadow(iotshadow.GetShadowRequest(thing_name=thing, client_token="get-1"), mqtt.QoS.AT_LEAST_ONCE).result(timeout=TIMEOUT)
    missing = expect("get-rejected", "get-1")
    assert missing.code == 404, missing

    desired = iotshadow.ShadowState(desired={"color": "red"})
    shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(thing_name=thing, state=desired, client_token="upd-1"), mqtt.QoS.AT_LEAST_ONCE).result(timeout=TIMEOUT)
    delta = expect("delta")
    assert delta.state == {"color": "red"} and delta.client_token == "upd-1" and delta.version == 1, delta
    accepted = expect("update-accepted", "upd-1")
    assert accepted.version == 1, accepted

    reported = iotshadow.ShadowState(reported={"color": "red"})
    shadow.publish_update_shadow(iotshadow.UpdateShadowRequest(thing_name=thing, state=reported, client_token="upd-2"), mqtt.QoS.AT_LEAST_ONCE).result(timeout=TIMEOUT)
    accepted = expect("update-accepted", "upd-2")
    assert accepted.version == 2 and accepted.state.reported == {"color": "red"}, accepted

    shadow.publish_get_shadow(iotshadow.GetShadowRequest(thing_name=thing, client_token="get-2"), mqtt.QoS.AT_LEAST_ONCE).result(timeout=TIMEOUT)
    document = expect("get-accepted", "get-2")
    assert document.version == 2, document
    assert document.state.desired == {"color": "red"} and document.state.reported == {"color": "red"}, document
    assert not document.state.delta, document

    connection.disconnect().result(timeout=TIMEOUT)
    print("shadow flow ok", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
