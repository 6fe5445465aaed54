"""Discovery and connection as the AWS IoT Device SDK v2 samples do them (shared by the SDK tests)."""

import argparse

from awscrt import io
from awsiot import mqtt_connection_builder
from awsiot.greengrass_discovery import DiscoveryClient

TIMEOUT = 20


def arguments(extra=None):
    parser = argparse.ArgumentParser()
    for name in ("--thing", "--cert", "--key", "--ca"):
        parser.add_argument(name, required=True)
    parser.add_argument("--discovery-port", type=int, required=True)
    if extra:
        extra(parser)
    return parser.parse_args()


def discover_and_connect(args):
    """Greengrass discovery with gg_server_name=localhost, then each endpoint in turn."""
    tls_options = io.TlsContextOptions.create_client_with_mtls_from_path(args.cert, args.key)
    tls_options.override_default_trust_store_from_path(None, args.ca)
    discovery = DiscoveryClient(
        io.ClientBootstrap.get_or_create_static_default(),
        io.SocketOptions(),
        io.ClientTlsContext(tls_options),
        "us-east-1",
        gg_server_name="localhost",
    )
    discovery.port = args.discovery_port
    print("Performing greengrass discovery...", flush=True)
    response = discovery.discover(args.thing).result(timeout=TIMEOUT)
    print(response, flush=True)
    for group in response.gg_groups:
        for core in group.cores:
            for endpoint in core.connectivity:
                print(f"Trying core {core.thing_arn} at host {endpoint.host_address} port {endpoint.port}", flush=True)
                connection = mqtt_connection_builder.mtls_from_path(
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
                    connection.connect().result(timeout=TIMEOUT)
                    print("Connected!", flush=True)
                    return connection
                except Exception as error:  # the sample tries the next endpoint on any failure
                    print(f"Connection failed with exception {error}", flush=True)
    raise SystemExit("All connection attempts failed")
