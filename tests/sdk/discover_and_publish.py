"""Drive Turf with the real AWS IoT Device SDK v2 for Python, as the tutorial's basic_discovery.py does.

Greengrass discovery against the core (mutual TLS, ALPN x-amzn-http-ca), then MQTT over mutual TLS to
each returned endpoint in turn with the returned CA, client id = thing name, clean session off,
keepalive 30 s; subscribe to the topic, publish numbered messages, and exit 0 once all came back.
Every wait is bounded. Run by the Rust end-to-end suite (tests/e2e/sdk.rs).
"""

import argparse
import json
import sys
import threading

from awscrt import io, mqtt
from awsiot import mqtt_connection_builder
from awsiot.greengrass_discovery import DiscoveryClient

TIMEOUT = 20


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--thing", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--discovery-port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args()

    tls_options = io.TlsContextOptions.create_client_with_mtls_from_path(args.cert, args.key)
    tls_options.override_default_trust_store_from_path(None, args.ca)
    tls_context = io.ClientTlsContext(tls_options)
    discovery = DiscoveryClient(
        io.ClientBootstrap.get_or_create_static_default(),
        io.SocketOptions(),
        tls_context,
        "us-east-1",
        gg_server_name="localhost",
    )
    discovery.port = args.discovery_port
    print("Performing greengrass discovery...", flush=True)
    response = discovery.discover(args.thing).result(timeout=TIMEOUT)
    print(response, flush=True)

    connection = None
    for group in response.gg_groups:
        for core in group.cores:
            for endpoint in core.connectivity:
                print(f"Trying core {core.thing_arn} at host {endpoint.host_address} port {endpoint.port}", flush=True)
                candidate = mqtt_connection_builder.mtls_from_path(
                    endpoint=endpoint.host_address,
                    port=endpoint.port,
                    cert_filepath=args.cert,
                    pri_key_filepath=args.key,
                    ca_bytes=group.certificate_authorities[0].encode("utf-8"),
                    client_id=args.thing,
                    clean_session=False,
                    keep_alive_secs=30,
                )
                try:
                    candidate.connect().result(timeout=TIMEOUT)
                    connection = candidate
                    break
                except Exception as error:  # the sample tries the next endpoint on any failure
                    print(f"Connection failed with exception {error}", flush=True)
            if connection:
                break
        if connection:
            break
    if connection is None:
        print("All connection attempts failed", flush=True)
        return 1
    print("Connected!", flush=True)

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
