#!/bin/sh
# `make demo`: the Greengrass client-device tutorial's steps 2 to 5 on this machine, end to end.
# A core device starts; a client device is registered, associated and given the tutorial's auth
# policy; the bridge route and the hello-world subscriber component are deployed; the device
# discovers the core and sends Hello World over mutual TLS, and the component's log shows each
# message. Then the smart light manager changes the light's color through its shadow and the
# light (a simulated device) follows. It prints a console login link and the metrics URL; then
# everything stops, unless KEEP=1 (`make demo KEEP=1`) leaves the host running for a look.
# Every wait is bounded.
set -eu

TURF=${TURF:-target/debug/turf}
WORK="$(pwd)/target/demo"
ROOT="$WORK/turf-root"
CERTS="$WORK/certs/MyClientDevice1"
HELLO=com.example.clientdevices.MyHelloWorldSubscriber
HELLO_LOG="$ROOT/logs/$HELLO.log"
MANAGER=com.example.clientdevices.MySmartLightManager
MANAGER_LOG="$ROOT/logs/$MANAGER.log"
HOST_PID=
TAIL_PID=

if [ -t 1 ]; then BOLD=$(printf '\033[1m'); DIM=$(printf '\033[2m'); OFF=$(printf '\033[0m'); else BOLD= DIM= OFF=; fi
say() { printf '\n%s==> %s%s\n' "$BOLD" "$*" "$OFF"; }
show() { printf '%s$ %s%s\n' "$DIM" "$*" "$OFF"; "$@" 2>&1 | sed 's/^/  /'; }
cleanup() {
    [ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null || true
    [ -n "$HOST_PID" ] && kill -TERM "$HOST_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# wait_for SECONDS COMMAND...: retry COMMAND every 0.1 s until it succeeds or time runs out.
wait_for() {
    tries=$(( $1 * 10 )); shift
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then return 1; fi
        sleep 0.1
    done
}

rm -rf "$WORK"
mkdir -p "$WORK"

say "1/6 Start the core device"
printf '%s$ turf run --mqtt-listen 127.0.0.1:0 --discovery-listen 127.0.0.1:0 --http-listen 127.0.0.1:0%s\n' "$DIM" "$OFF"
"$TURF" --root "$ROOT" run --mqtt-listen 127.0.0.1:0 --discovery-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --log-level warn \
    >"$WORK/turf.out" 2>"$WORK/turf.err" &
HOST_PID=$!
if ! wait_for 60 grep -q 'discovery (HTTPS' "$WORK/turf.out"; then
    echo "turf did not start; its log:" >&2
    cat "$WORK/turf.err" >&2
    exit 1
fi
sed 's/^/  /' "$WORK/turf.out"
PORT=$(sed -n 's/.*devices (MQTT, mutual TLS): .*:\([0-9]*\)$/\1/p' "$WORK/turf.out")
DISCOVERY=$(sed -n 's/.*discovery (HTTPS, mTLS): .*:\([0-9]*\)$/\1/p' "$WORK/turf.out")
METRICS=$(sed -n 's/.*metrics and console: *\(http.*\)$/\1/p' "$WORK/turf.out")

say "2/6 Tutorial step 2: register and associate MyClientDevice1, deploy the client device auth policy, publish the core's endpoint"
show "$TURF" --root "$ROOT" device add MyClientDevice1 --out "$CERTS"
show "$TURF" --root "$ROOT" device associate MyClientDevice1
show "$TURF" --root "$ROOT" deployment create --update-config @recipes/tutorial/step2-client-device-auth.json
show "$TURF" --root "$ROOT" connectivity set "127.0.0.1:$PORT"

say "3/6 Tutorial step 4: deploy the bridge route LocalMqtt -> Pubsub and the hello-world subscriber (WebAssembly)"
show "$TURF" --root "$ROOT" deployment create \
    --recipeDir recipes/components \
    --artifactDir target/artifacts \
    --merge "$HELLO=1.0.0" \
    --update-config @recipes/tutorial/step4-bridge.json
show "$TURF" --root "$ROOT" status

say "4/6 Tutorial step 3: MyClientDevice1 discovers the core and publishes 10 Hello World messages; the component logs each one"
touch "$HELLO_LOG"
tail -n 0 -F "$HELLO_LOG" 2>/dev/null | sed -u 's/^/  [component log] /' &
TAIL_PID=$!
printf '%s$ turf client publish --thing MyClientDevice1 --certs %s --core localhost:%s%s\n' "$DIM" "$CERTS" "$DISCOVERY" "$OFF"
"$TURF" --root "$ROOT" client publish --thing MyClientDevice1 --certs "$CERTS" \
    --core "localhost:$DISCOVERY" --interval-ms 200 2>&1 | sed -u 's/^/  [device] /'
count_messages() { [ "$(grep -c 'Received new message' "$HELLO_LOG")" -ge 10 ]; }
wait_for 10 count_messages || { echo "the component did not log all 10 messages" >&2; exit 1; }
sleep 0.3
kill "$TAIL_PID" 2>/dev/null || true
TAIL_PID=

say "5/6 Tutorial step 5: the shadow routes and the smart light manager (color every 2 s here, 15 s in the tutorial); MyClientDevice1 acts as the light"
show "$TURF" --root "$ROOT" deployment create --update-config @recipes/tutorial/step5-bridge.json
show "$TURF" --root "$ROOT" deployment create \
    --recipeDir recipes/components \
    --artifactDir target/artifacts \
    --merge "$MANAGER=1.0.0" \
    --update-config '{"com.example.clientdevices.MySmartLightManager":{"MERGE":{"smartLightDeviceNames":["MyClientDevice1"],"setColorIntervalSeconds":2}}}'
touch "$MANAGER_LOG"
tail -n +1 -F "$MANAGER_LOG" 2>/dev/null | sed -u 's/^/  [manager log] /' &
TAIL_PID=$!
printf '%s$ turf client shadow --thing MyClientDevice1 --certs %s --core localhost:%s --max-updates 3%s\n' "$DIM" "$CERTS" "$DISCOVERY" "$OFF"
"$TURF" --root "$ROOT" client shadow --thing MyClientDevice1 --certs "$CERTS" \
    --core "localhost:$DISCOVERY" --max-updates 3 --duration 60 2>&1 | sed -u 's/^/  [light] /'
confirmations() { [ "$(grep -c 'Received shadow update confirmation' "$MANAGER_LOG")" -ge 2 ]; }
wait_for 20 confirmations || { echo "the manager did not log the light's confirmations" >&2; exit 1; }
sleep 0.3
kill "$TAIL_PID" 2>/dev/null || true
TAIL_PID=
show "$TURF" --root "$ROOT" shadow get MyClientDevice1
if command -v curl >/dev/null 2>&1; then
    printf '%s$ curl -s %s | grep -E "^turf_(mqtt_messages_received|bridge_messages|shadow_requests)_total"%s\n' "$DIM" "$METRICS" "$OFF"
    curl -s "$METRICS" | grep -E '^turf_(mqtt_messages_received|bridge_messages|shadow_requests)_total' \
        | grep -v ' 0$' | sed 's/^/  /'
fi

show "$TURF" --root "$ROOT" console
if [ "${KEEP:-}" = 1 ]; then
    say "The core device keeps running (KEEP=1): open the link above, or $METRICS; Ctrl-C stops it"
    wait "$HOST_PID" || true
    exit 0
fi

say "6/6 Stop the core device (SIGTERM)"
kill -TERM "$HOST_PID"
status=0
wait "$HOST_PID" || status=$?
HOST_PID=
echo "  turf exited with status $status"
printf '\nEverything the demo made is under %s (host log: %s).\n' "$WORK" "$ROOT/logs/turf.log"
exit "$status"
