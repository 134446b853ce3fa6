#!/usr/bin/env bash
# Measures the aisle server over HTTP with wrk on this machine (server and load generator
# share it). Usage: loadtest/wrk/run.sh [seconds] [connections]
# Needs: wrk (apt-get install wrk), curl. Builds and starts `aisle` on a temp data dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-20}
connections=${2:-64}
export AISLE_TOKEN=wrk-bench-admin-token-0123456789
cargo build --release -q -p aisle-server --bin aisle
data=$(mktemp -d)
AISLE_ADMIN_TOKEN=$AISLE_TOKEN AISLE_LOG=warn ./target/release/aisle serve \
  --listen 127.0.0.1:18080 --data-dir "$data" --durability "${AISLE_DURABILITY:-fsync}" > "$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf localhost:18080/healthz >/dev/null && break; sleep 0.1; done
api() { curl -sf -X "$1" "localhost:18080$2" -H "Authorization: Bearer $AISLE_TOKEN" -H 'Content-Type: application/json' -d "$3" >/dev/null; }
api PUT /v1/locations/WH '{"name":"Warehouse","kind":"warehouse","lat":22.3,"lon":114.2,"channels":["web","pos"],"pickup":false,"ships":true,"priority":0}'
for i in $(seq 0 99); do
  api PUT "/v1/skus/SKU-$i" "{\"name\":\"Sku $i\",\"price\":1000}"
  api POST /v1/stock/receive "{\"location\":\"WH\",\"sku\":\"SKU-$i\",\"qty\":1000000}"
done
echo "== reservations, durability ${AISLE_DURABILITY:-fsync}, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" -s loadtest/wrk/reserve.lua http://127.0.0.1:18080 | grep -E "Requests/sec|p50|non-2xx"
echo "== reservations, 8 connections (lighter load, for latency), ${seconds}s"
wrk -t2 -c8 -d"${seconds}s" -s loadtest/wrk/reserve.lua http://127.0.0.1:18080 | grep -E "Requests/sec|p50|non-2xx"
echo "== cell reads, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" -s loadtest/wrk/read.lua http://127.0.0.1:18080 | grep -E "Requests/sec|p50|non-2xx"
