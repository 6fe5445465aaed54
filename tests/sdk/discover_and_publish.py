"""Drive Turf with the real AWS IoT Device SDK v2 for Python, as the tutorial's basic_discovery.py does.

Greengrass discovery against the core (mutual TLS, ALPN x-amzn-http-ca), then MQTT over mutual TLS to
each returned endpoint in turn with the returned CA, client id = thing name, clean session off,
keepalive 30 s; subscribe to the topic, publish numbered messages, and exit 0 once all came back.
Every wait is bounded. Run by the Rust end-to-end suite (tests/e2e/sdk.rs).
"""

import json
import sys
import threading

from awscrt import mqtt

from common import TIMEOUT, arguments, discover_and_connect


def main():
    def extra(parser):
        parser.add_argument("--topic", required=True)
        parser.add_argument("--count", type=int, default=10)

    args = arguments(extra)
    connection = discover_and_connect(args)

    received = []
    all_back = threading.Event()

    def on_message(topic, payload, **kwargs):
        print(f"Publish received on topic {topic}", flush=True)
        print(payload, flush=True)
        received.append(json.loads(payload))
        if len(received) >= args.count:
            all_back.set()

    subscribed, _ = connection.subscribe(args.topic, mqtt.QoS.AT_LEAST_ONCE, on_message)
    subscribed.result(timeout=TIMEOUT)
    for sequence in range(args.count):
        message = json.dumps({"message": "Hello World!", "sequence": sequence})
        published, _ = connection.publish(args.topic, message, mqtt.QoS.AT_LEAST_ONCE)
        published.result(timeout=TIMEOUT)
        print(f"Published topic {args.topic}: {message}", flush=True)
    ok = all_back.wait(timeout=TIMEOUT)
    connection.disconnect().result(timeout=TIMEOUT)
    if not ok:
        print(f"only {len(received)} of {args.count} messages came back", flush=True)
        return 1
    sequences = [m["sequence"] for m in received]
    print(f"received sequences {sequences}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
