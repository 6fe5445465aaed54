#!/bin/sh
# `make demo-cloud`: tutorial step 5's smart light, with its shadow synced to a cloud. A second
# Turf host plays AWS IoT Core (a shadow service answering the AWS IoT shadow MQTT API); the core
# device connects to it as its upstream and syncs the shadows of MyClientDevice*. The light (a
# simulated client device on the core) follows a color set on the cloud side, and its report
# reaches the cloud. Every wait is bounded; everything stops at the end.
set -eu

TURF=${TURF:-target/debug/turf}
WORK="$(pwd)/target/demo-cloud"
CLOUD="$WORK/cloud-root"
CORE="$WORK/core-root"
CERTS="$WORK/certs"
CLOUD_PID=
CORE_PID=
LIGHT_PID=

if [ -t 1 ]; then BOLD=$(printf '\033[1m'); DIM=$(printf '\033[2m'); OFF=$(printf '\033[0m'); else BOLD= DIM= OFF=; fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
show() { printf '%s$ %s%s\n' "$DIM" "$(echo "$*" | sed "s|$WORK/||g; s|$TURF|turf|")" "$OFF"; "$@" 2>&1 | sed 's/^/  /'; }
cleanup() {
    for pid in "$LIGHT_PID" "$CORE_PID" "$CLOUD_PID"; do
        [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM
wait_for() {
    tries=$(( $1 * 10 )); shift
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then return 1; fi
        sleep 0.1
    done
}
# start NAME ROOT ARGS...: runs `turf run` in the background, waits until it listens.
start() {
    name=$1; root=$2; shift 2
    "$TURF" --root "$root" run --mqtt-listen 127.0.0.1:0 --discovery-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 \
        --log-level warn "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    if ! wait_for 60 grep -q 'discovery (HTTPS' "$WORK/$name.out"; then
        echo "the $name did not start; its log:" >&2
        cat "$WORK/$name.err" >&2
        exit 1
    fi
    sed 's/^/  /' "$WORK/$name.out"
}
port_of() { sed -n "s/.*$2: .*:\([0-9]*\)$/\1/p" "$WORK/$1.out"; }

rm -rf "$WORK"
mkdir -p "$WORK"

say "1/5 Start the cloud: a Turf host serving the AWS IoT shadow API over MQTT, and register the core device MyCore with it"
printf '%s$ turf --root cloud-root run --thing-name Cloud ...%s\n' "$DIM" "$OFF"
start cloud "$CLOUD" --thing-name Cloud
CLOUD_PID=$!
CLOUD_PORT=$(port_of cloud 'devices (MQTT, mutual TLS)')
show "$TURF" --root "$CLOUD" device add MyCore --out "$CERTS/MyCore"
show "$TURF" --root "$CLOUD" deployment create --update-config @recipes/cloud/cloud-shadow-service.json

say "2/5 Start the core device with the cloud as its upstream (IotCore)"
printf '%s$ turf --root core-root run --upstream mqtts://localhost:%s --upstream-client-id MyCore --upstream-cert certs/MyCore/device.pem.crt ...%s\n' \
    "$DIM" "$CLOUD_PORT" "$OFF"
start core "$CORE" --upstream "mqtts://localhost:$CLOUD_PORT" --upstream-client-id MyCore \
    --upstream-cert "$CERTS/MyCore/device.pem.crt" --upstream-key "$CERTS/MyCore/private.pem.key" \
    --upstream-ca "$CERTS/MyCore/ca.pem"
CORE_PID=$!
DISCOVERY=$(port_of core 'discovery (HTTPS, mTLS)')
CORE_PORT=$(port_of core 'devices (MQTT, mutual TLS)')

say "3/5 Tutorial steps 2 and 5 on the core, and shadow sync for MyClientDevice*"
show "$TURF" --root "$CORE" device add MyClientDevice1 --out "$CERTS/MyClientDevice1"
show "$TURF" --root "$CORE" device associate MyClientDevice1
show "$TURF" --root "$CORE" connectivity set "127.0.0.1:$CORE_PORT"
show "$TURF" --root "$CORE" deployment create --update-config @recipes/tutorial/step2-client-device-auth.json
show "$TURF" --root "$CORE" deployment create --update-config @recipes/tutorial/step5-bridge.json
show "$TURF" --root "$CORE" deployment create --update-config @recipes/tutorial/step5-shadow-sync.json

say "4/5 MyClientDevice1 is the light; the color is set on the cloud side"
printf '%s$ turf client shadow --thing MyClientDevice1 --certs certs/MyClientDevice1 --core localhost:%s --max-updates 2%s\n' \
    "$DIM" "$DISCOVERY" "$OFF"
"$TURF" --root "$CORE" client shadow --thing MyClientDevice1 --certs "$CERTS/MyClientDevice1" \
    --core "localhost:$DISCOVERY" --max-updates 2 --duration 60 >"$WORK/light.out" 2>&1 &
LIGHT_PID=$!
reported() {
    "$TURF" --root "$CLOUD" shadow get MyClientDevice1 2>/dev/null | tr -d ' \n' | grep -q "\"reported\":{\"color\":\"$1\"}"
}
wait_for 30 reported off || { echo "the light's first report did not reach the cloud" >&2; cat "$WORK/light.out" >&2; exit 1; }
show "$TURF" --root "$CLOUD" shadow update MyClientDevice1 '{"state": {"desired": {"color": "green"}}}'
wait "$LIGHT_PID" || { echo "the light did not follow" >&2; cat "$WORK/light.out" >&2; exit 1; }
LIGHT_PID=
sed 's/^/  [light] /' "$WORK/light.out"
wait_for 30 reported green || { echo "the light's report did not reach the cloud" >&2; exit 1; }
show "$TURF" --root "$CLOUD" shadow get MyClientDevice1

say "5/5 Where sync stands on the core; stop both hosts"
show "$TURF" --root "$CORE" shadow sync status
kill -TERM "$CORE_PID" "$CLOUD_PID"
wait "$CORE_PID" "$CLOUD_PID" || true
CORE_PID=
CLOUD_PID=
printf '\nEverything the demo made is under %s.\n' "$WORK"
