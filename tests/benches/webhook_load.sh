#!/usr/bin/env bash
# Load test of the running HTTPS webhook: wrk (Debian package, installed when missing and root)
# keeps many keep-alive connections busy POSTing a typical AdmissionReview to /mutate on a
# static release build (`cargo dist`), on this same 2-core machine. Prints requests/s and latency percentiles.
#
#   tests/benches/webhook_load.sh            # 64 connections, 2 wrk threads, 20 s
#   CONNECTIONS=128 DURATION=30s tests/benches/webhook_load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
connections=${CONNECTIONS:-64}
duration=${DURATION:-20s}
threads=${THREADS:-2}
work=target/bench/webhook
rm -rf "$work" && mkdir -p "$work"

if ! command -v wrk >/dev/null; then
  [ "$(id -u)" = 0 ] || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
  apt-get install -y -qq wrk >/dev/null
fi
cargo dist --quiet

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=hydrant-webhook -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HYDRANT_LOG=warn target/x86_64-unknown-linux-gnu/release/hydrant webhook --listen "127.0.0.1:$port" \
  --tls-cert "$work/tls.crt" --tls-key "$work/tls.key" \
  --vault-addr https://vault.vault.svc:8200 >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -ksf "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

body=tests/fixtures/admission/vault-k8s-secret-map-native.json
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$body", "rb")
wrk.body = f:read("*all")
f:close()
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
LUA
# A short warm-up, then the measured run.
wrk -t"$threads" -c"$connections" -d3s -s "$work/post.lua" "https://127.0.0.1:$port/mutate" >/dev/null
wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$work/post.lua" "https://127.0.0.1:$port/mutate" | tee "$work/wrk.txt"
rss=$(awk '/VmHWM/ {print $2}' /proc/$server/status)
echo "server peak RSS: $((rss / 1024)) MiB"
grep -q "RESULT.*errors=0 " "$work/wrk.txt" || { echo "errors during the run" >&2; exit 1; }
