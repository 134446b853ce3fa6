#!/usr/bin/env bash
# Measures the aisle server over HTTP with wrk on this machine (server and load generator
# share it). Usage: loadtest/wrk/run.sh [seconds] [connections]
# Needs: wrk (apt-get install wrk), curl. Builds and starts `aisle` (serve.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-20}
connections=${2:-64}
port=18080
. loadtest/wrk/serve.sh
api PUT /v1/locations/WH '{"name":"Warehouse","kind":"warehouse","lat":22.3,"lon":114.2,"channels":["web","pos"],"pickup":false,"ships":true,"priority":0}' >/dev/null
for i in $(seq 0 99); do
  api PUT "/v1/skus/SKU-$i" "{\"name\":\"Sku $i\",\"price\":1000}" >/dev/null
  api POST /v1/stock/receive "{\"location\":\"WH\",\"sku\":\"SKU-$i\",\"qty\":1000000}" >/dev/null
done
echo "== reservations, durability ${AISLE_DURABILITY:-fsync}, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" -s loadtest/wrk/reserve.lua "$base" | grep -E "Requests/sec|p50|non-2xx"
echo "== reservations, 8 connections (lighter load, for latency), ${seconds}s"
wrk -t2 -c8 -d"${seconds}s" -s loadtest/wrk/reserve.lua "$base" | grep -E "Requests/sec|p50|non-2xx"
echo "== cell reads, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" -s loadtest/wrk/read.lua "$base" | grep -E "Requests/sec|p50|non-2xx"
