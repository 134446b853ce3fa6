#!/usr/bin/env bash
# Measures flash-sale claims over HTTP with wrk on this machine (server and load generator
# share it): a stampede of distinct customers on one pool of 1,000,000 units, then claims on
# the sold-out sale. Usage: loadtest/wrk/flash.sh [seconds] [connections]
# Needs: wrk (apt-get install wrk), curl. Builds and starts `aisle` on a temp data dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-64}
export AISLE_TOKEN=wrk-bench-admin-token-0123456789
cargo build --release -q -p aisle-server --bin aisle
data=$(mktemp -d)
AISLE_ADMIN_TOKEN=$AISLE_TOKEN AISLE_LOG=warn ./target/release/aisle serve \
  --listen 127.0.0.1:18081 --data-dir "$data" --durability "${AISLE_DURABILITY:-fsync}" > "$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf localhost:18081/healthz >/dev/null && break; sleep 0.1; done
api() { curl -sf -X "$1" "localhost:18081$2" -H "Authorization: Bearer $AISLE_TOKEN" -H 'Content-Type: application/json' -d "$3"; }
api PUT /v1/locations/WH '{"name":"Warehouse","kind":"warehouse","lat":22.3,"lon":114.2,"channels":["web"],"pickup":false,"ships":true}' >/dev/null
api PUT /v1/skus/SNKR '{"name":"Sneaker","price":99900}' >/dev/null
api POST /v1/stock/receive '{"location":"WH","sku":"SNKR","qty":1000000}' >/dev/null
api POST /v1/stock/receive '{"location":"WH","sku":"SNKR","qty":10}' >/dev/null
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
later=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
api PUT /v1/flash-sales/DROP "{\"sku\":\"SNKR\",\"location\":\"WH\",\"quantity\":1000000,\"starts_at\":\"$now\",\"ends_at\":\"$later\"}" >/dev/null
api PUT /v1/flash-sales/GONE "{\"sku\":\"SNKR\",\"location\":\"WH\",\"quantity\":1,\"starts_at\":\"$now\",\"ends_at\":\"$later\"}" >/dev/null || true
echo "== claims on DROP (1,000,000 units), durability ${AISLE_DURABILITY:-fsync}, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" -s loadtest/wrk/claim.lua http://127.0.0.1:18081 | grep -E "Requests/sec|p50|non-2xx"
curl -sf localhost:18081/v1/flash-sales/DROP -H "Authorization: Bearer $AISLE_TOKEN"; echo
echo "== claims on the sold-out sale GONE, $connections connections, ${seconds}s"
api POST /v1/flash-sales/GONE/claims '{"customer":"first"}' >/dev/null || true
AISLE_SALE=GONE wrk -t2 -c"$connections" -d"${seconds}s" -s loadtest/wrk/claim.lua http://127.0.0.1:18081 | grep -E "Requests/sec|p50|non-2xx"
