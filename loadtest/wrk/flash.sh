#!/usr/bin/env bash
# Measures flash-sale claims over HTTP with wrk on this machine (server and load generator
# share it): a stampede of distinct customers on one pool of 1,000,000 units, then claims on
# the sold-out sale. Usage: loadtest/wrk/flash.sh [seconds] [connections]
# Needs: wrk (apt-get install wrk), curl. Builds and starts `aisle` (serve.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-10}
connections=${2:-64}
port=18081
. loadtest/wrk/serve.sh
api PUT /v1/locations/WH '{"name":"Warehouse","kind":"warehouse","lat":22.3,"lon":114.2,"channels":["web"],"pickup":false,"ships":true}' >/dev/null
api PUT /v1/skus/SNKR '{"name":"Sneaker","price":99900}' >/dev/null
api POST /v1/stock/receive '{"location":"WH","sku":"SNKR","qty":1000000}' >/dev/null
api POST /v1/stock/receive '{"location":"WH","sku":"SNKR","qty":10}' >/dev/null
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
later=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
api PUT /v1/flash-sales/DROP "{\"sku\":\"SNKR\",\"location\":\"WH\",\"quantity\":1000000,\"starts_at\":\"$now\",\"ends_at\":\"$later\"}" >/dev/null
api PUT /v1/flash-sales/GONE "{\"sku\":\"SNKR\",\"location\":\"WH\",\"quantity\":1,\"starts_at\":\"$now\",\"ends_at\":\"$later\"}" >/dev/null || true
echo "== claims on DROP (1,000,000 units), durability ${AISLE_DURABILITY:-fsync}, $connections connections, ${seconds}s"
wrk -t2 -c"$connections" -d"${seconds}s" -s loadtest/wrk/claim.lua "$base" | grep -E "Requests/sec|p50|non-2xx"
curl -sf "$base"/v1/flash-sales/DROP -H "Authorization: Bearer $AISLE_TOKEN"; echo
echo "== claims on the sold-out sale GONE, $connections connections, ${seconds}s"
api POST /v1/flash-sales/GONE/claims '{"customer":"first"}' >/dev/null || true
AISLE_SALE=GONE wrk -t2 -c"$connections" -d"${seconds}s" -s loadtest/wrk/claim.lua "$base" | grep -E "Requests/sec|p50|non-2xx"
