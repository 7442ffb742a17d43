#!/usr/bin/env bash
# Agent listing under load, and 10,000 concurrent keep-alive connections, against the
# release build. See benches/README.md ("HTTP: listing agents" and "10,000 concurrent users").
#
# Usage: benches/c10k.sh [wrk_seconds] [connections] [seconds] [ramp_seconds] [list_percent]
#   defaults: 15 10000 60 10 50. wrk_seconds=0 skips the wrk part, connections=0 the c10k part.
# Honors CARGO_TARGET_DIR. Seeds a fresh data dir (100 organizations, 10,000 users with one
# API token each, 100,000 agents; benches/common/dataset.rs), starts the server on
# 127.0.0.1 and a free port, then:
#   1. wrk -c64 and -c512 on GET /api/v1/orgs/{org}/agents?limit=50 (the big organization,
#      about 5,000 agents, token of a plain member);
#   2. benches/c10k.rs: N keep-alive connections over N distinct users, each sending a list
#      or get request about once a second.
# Traffic goes to 127.0.0.1 only; everything is bounded in time and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
wrk_secs=${1:-15}
conns=${2:-10000}
secs=${3:-60}
ramp=${4:-10}
list_percent=${5:-50}
target=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet
c10k=$(cargo bench --bench c10k --no-run 2>&1 | sed -n 's/.*Executable benches\/c10k.rs (\(.*\))/\1/p')
bin=$target/release/xagent
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
base="http://$addr"

# As many file descriptors as the hard limit allows, for the server and the clients.
ulimit -n "$(ulimit -Hn)" || true
echo "machine: $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); ulimit -n $(ulimit -n) (hard $(ulimit -Hn)); somaxconn $(cat /proc/sys/net/core/somaxconn)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg); other heavy processes: $(pgrep -c rustc || true) rustc, $(pgrep -c cargo || true) cargo"

"$c10k" seed "$dir/data"
XAGENT_LOG='warn,xagent::app=info' "$bin" serve --data-dir "$dir/data" --listen "$addr" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
echo "server: $(grep -o 'open-file limit[^"]*' "$dir/server.log" | head -1); $(grep -m1 -o 'limit=[0-9]*' "$dir/server.log" || true)"

# tokens.tsv line 201 is user 200: primary organization 0 (the big one), role member.
read -r token org role < <(sed -n 201p "$dir/data/tokens.tsv")
echo "wrk user: role $role in organization $org"
if [ "$wrk_secs" -gt 0 ]; then
  curl -sf -H "Authorization: Bearer $token" "$base/api/v1/orgs/$org/agents?limit=50" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); items=d.get("items", d) if isinstance(d, dict) else d; print("list returns", len(items), "agents,", len(json.dumps(d)), "bytes")'
  for c in 64 512; do
    echo "== wrk GET /api/v1/orgs/{org}/agents?limit=50, $c connections, ${wrk_secs}s"
    wrk -t2 -c"$c" -d"${wrk_secs}s" --timeout 10s --latency -H "Authorization: Bearer $token" \
      "$base/api/v1/orgs/$org/agents?limit=50" |
      grep -E 'Requests/sec|requests in|Non-2xx|Socket errors|^ +50%|^ +90%|^ +99%'
  done
  agent=$(awk -v o="$org" '$1 == o { print $2; exit }' "$dir/data/agents.tsv")
  echo "== wrk GET /api/v1/orgs/{org}/agents/{id} (for comparison), 64 connections, ${wrk_secs}s"
  wrk -t2 -c64 -d"${wrk_secs}s" --timeout 10s --latency -H "Authorization: Bearer $token" \
    "$base/api/v1/orgs/$org/agents/$agent" |
    grep -E 'Requests/sec|requests in|Non-2xx|Socket errors|^ +50%|^ +90%|^ +99%'
  echo "== wrk GET /api/v1/orgs/{org}/agents?limit=20 (the c10k list), 64 connections, ${wrk_secs}s"
  wrk -t2 -c64 -d"${wrk_secs}s" --timeout 10s --latency -H "Authorization: Bearer $token" \
    "$base/api/v1/orgs/$org/agents?limit=20" |
    grep -E 'Requests/sec|requests in|Non-2xx|Socket errors|^ +50%|^ +90%|^ +99%'
fi

if [ "$conns" -gt 0 ]; then
  # Server-side figures halfway through the measured window (bounded: one sample).
  ( sleep $((ramp + secs / 2)); kill -0 $pid 2>/dev/null &&
    echo "server at t=$((ramp + secs / 2))s: $(grep VmRSS /proc/$pid/status | xargs), $(ls /proc/$pid/fd | wc -l) fds, $(ss -Htn state established "( sport = :$port )" | wc -l) established" ) &
  sampler=$!
  timeout $((ramp + secs + 120)) "$c10k" run "$addr" "$dir/data" "$conns" "$secs" "$ramp" "$list_percent"
  wait $sampler || true
fi
echo "server warnings/errors: $(grep -ciE 'warn|error' "$dir/server.log" || true)"
grep -iE 'warn|error' "$dir/server.log" | grep -v 'open-file' | head -5 || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
