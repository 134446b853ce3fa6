#!/usr/bin/env bash
# Runs the same `flash` stampede (same concurrency, customers, duration and seed) against
# aisle (--durability fsync), Redis 7 (AOF, appendfsync always, then everysec) and
# PostgreSQL (fsync=on, synchronous_commit=on) on this machine, and prints a markdown table
# of throughput, p99 and oversell with the ratios aisle/Redis-always and aisle/PostgreSQL.
#
# Usage: loadtest/compare.sh [seconds per target] [concurrency]
# Env:   CUSTOMERS (100000)  QUANTITY (1000000)  LIMIT (5, units per customer)  WARMUP (5)
#        OUT (target/loadtest-compare: JSON reports and compare.md)
#        REDIS_URL / PG_URL: use a running server instead of a throwaway one (the script
#        sets appendonly/appendfsync on that Redis with CONFIG SET).
# Installs redis-server and postgresql with apt-get when missing. Throwaway servers keep
# their data under /var/tmp (disk, not tmpfs, so fsync means something) and are removed.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
concurrency=${2:-64}
customers=${CUSTOMERS:-100000}
quantity=${QUANTITY:-1000000}
limit=${LIMIT:-5}
warmup=${WARMUP:-5}
out=${OUT:-target/loadtest-compare}
mkdir -p "$out"
rm -f "$out"/{aisle,redis-always,redis-everysec,postgres}.json

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
pg_bin() {
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}
missing=()
[ -n "${REDIS_URL:-}" ] || command -v redis-server >/dev/null || missing+=(redis-server)
[ -n "${PG_URL:-}" ] || [ -n "$(pg_bin)" ] || missing+=(postgresql)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

base=$(mktemp -d /var/tmp/aisle-compare.XXXXXX)
chmod 755 "$base"
pids=()
redis_started=""
pg_started=""
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [ -n "$redis_started" ] && redis-cli -p "$redis_started" shutdown nosave >/dev/null 2>&1
  if [ -n "$pg_started" ]; then
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$(pg_bin)/pg_ctl" -D "$base/pg/data" -m fast stop >/dev/null
    else "$(pg_bin)/pg_ctl" -D "$base/pg/data" -m fast stop >/dev/null; fi
  fi
  rm -rf "$base"
}
trap cleanup EXIT

echo "== building aisle and aisle-loadtest (release)"
cargo build --release -q -p aisle-server --bin aisle
cargo build --release -q -p aisle-loadtest
lt=./target/release/aisle-loadtest

# Redis: a throwaway instance on REDIS_PORT unless REDIS_URL names one.
if [ -z "${REDIS_URL:-}" ]; then
  port=${REDIS_PORT:-16379}
  if redis-cli -p "$port" ping >/dev/null 2>&1; then
    echo "== using the Redis already on 127.0.0.1:$port"
  else
    mkdir -p "$base/redis"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$base/redis" --appendonly yes --appendfsync always \
      --save '' --daemonize yes --logfile "$base/redis/redis.log" --pidfile "$base/redis/redis.pid"
    redis_started=$port
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  REDIS_URL=redis://127.0.0.1:$port
fi
rcli() { redis-cli -u "$REDIS_URL" "$@" >/dev/null; }

# PostgreSQL: a throwaway cluster (initdb in a temp dir, as the postgres user when root).
if [ -z "${PG_URL:-}" ]; then
  port=${PG_PORT:-15432}
  if pg_isready -q -h 127.0.0.1 -p "$port"; then
    echo "== using the PostgreSQL already on 127.0.0.1:$port"
  else
    bin=$(pg_bin)
    mkdir -p "$base/pg"
    run_pg() { "$@"; }
    if [ "$(id -u)" = 0 ]; then chown postgres "$base/pg"; run_pg() { runuser -u postgres -- "$@"; }; fi
    run_pg "$bin/initdb" -D "$base/pg/data" -A trust -U postgres >"$base/initdb.log"
    run_pg "$bin/pg_ctl" -D "$base/pg/data" -l "$base/pg/server.log" -w -o \
      "-p $port -k $base/pg -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=$((concurrency + 20))" \
      start >/dev/null
    pg_started=$port
  fi
  PG_URL=postgres://postgres@127.0.0.1:$port/postgres
fi

# aisle: as loadtest/wrk/run.sh starts it, with the WAL fsynced before every answer.
export AISLE_TOKEN=compare-admin-token-0123456789
aisle_port=${AISLE_PORT:-18090}
mkdir -p "$base/aisle"
AISLE_ADMIN_TOKEN=$AISLE_TOKEN AISLE_LOG=warn ./target/release/aisle serve \
  --listen "127.0.0.1:$aisle_port" --data-dir "$base/aisle" --durability fsync >"$base/aisle.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -sf "127.0.0.1:$aisle_port/healthz" >/dev/null && break; sleep 0.1; done

common=(--scenario flash -c "$concurrency" -d "${seconds}s" --warmup "${warmup}s" --customers "$customers"
  --quantity "$quantity" --per-customer-limit "$limit" --seed 7 --quiet)
failed=0
run() {
  local name=$1
  shift
  echo "== $name"
  if ! "$lt" "${common[@]}" --json "$out/$name.json" "$@"; then
    echo "!! $name: the run or its consistency check failed"
    failed=1
  fi
  sleep 2
}
run aisle --target "http://127.0.0.1:$aisle_port" --label "aisle (--durability fsync)"
rcli config set appendonly yes
rcli config set appendfsync always
run redis-always --target "$REDIS_URL" --label "Redis 7 (Lua script)"
rcli config set appendfsync everysec
run redis-everysec --target "$REDIS_URL" --label "Redis 7 (Lua script)"
run postgres --target "$PG_URL" --label "PostgreSQL (UPDATE, one hot row)"

{
  echo "### flash stampede: aisle, Redis, PostgreSQL on one machine"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -sr);"
  echo "server and load generator on the same machine. Command: \`loadtest/compare.sh $seconds $concurrency\`"
  echo "(customers $customers, quantity $quantity, per-customer limit $limit, ${warmup} s warm-up)."
  echo
  reports=()
  for name in aisle redis-always redis-everysec postgres; do
    [ -f "$out/$name.json" ] && reports+=("$out/$name.json")
  done
  "$lt" compare "${reports[@]}"
} >"$out/compare.md"
echo
cat "$out/compare.md"
echo
echo "table written to $out/compare.md; reports in $out/*.json"
exit $failed
