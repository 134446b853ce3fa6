# Sourced by the wrk scripts: builds `aisle`, starts it with durability $AISLE_DURABILITY
# (fsync by default) on a temp data dir at 127.0.0.1:$port, stops it and removes the dir on
# exit, and defines `api METHOD PATH BODY` (prints the answer). Set `port` before sourcing.
export AISLE_TOKEN=wrk-bench-admin-token-0123456789
base="http://127.0.0.1:$port"
cargo build --release -q -p aisle-server --bin aisle
data=$(mktemp -d)
AISLE_ADMIN_TOKEN=$AISLE_TOKEN AISLE_LOG=warn ./target/release/aisle serve \
  --listen "127.0.0.1:$port" --data-dir "$data" --durability "${AISLE_DURABILITY:-fsync}" > "$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
api() { curl -sf -X "$1" "$base$2" -H "Authorization: Bearer $AISLE_TOKEN" -H 'Content-Type: application/json' -d "$3"; }
