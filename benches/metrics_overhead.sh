#!/usr/bin/env bash
# The cost of the metrics middleware: wrk against GET /healthz (and GET /api/v1/me with an
# API token) of two release binaries, one built without the metrics layer and one with it,
# each on its own temporary data dir and port, alternately, so that a busy moment of the
# machine falls on both. Besides wrk's figures it prints the server's CPU time per request
# (user + system, from /proc), which a loaded machine disturbs less than throughput. Traffic goes to 127.0.0.1 only; everything stops by itself.
# Usage: benches/metrics_overhead.sh WITHOUT_BIN WITH_BIN [seconds] [connections] [rounds]
set -euo pipefail
without=$1 with=$2 secs=${3:-10} conns=${4:-64} rounds=${5:-2}
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)"; exit 1; }

run() { # label binary
  local label=$1 bin=$2 dir port base pid token
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  XAGENT_LOG=warn "$bin" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
  printf 'bench password 123\n' | XAGENT_LOG=warn "$bin" admin create-user --data-dir "$dir/data" \
    --email bench@example.com --name Bench --password-stdin >/dev/null
  local login csrf org
  login=$(curl -sf -c "$dir/jar" -H 'content-type: application/json' \
    -d '{"email":"bench@example.com","password":"bench password 123"}' "$base/api/v1/auth/login")
  csrf=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["csrf_token"])' <<<"$login")
  org=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["current_organization_id"])' <<<"$login")
  token=$(curl -sf -b "$dir/jar" -H "x-csrf-token: $csrf" -H 'content-type: application/json' \
    -d "{\"name\":\"bench\",\"organization_id\":\"$org\"}" "$base/api/v1/me/tokens" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  for path in /healthz /api/v1/me; do
    local t0 t1 rps p50 p99 n
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Authorization: Bearer $token" "$base$path" >"$dir/wrk.txt"
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    rps=$(awk '/Requests\/sec/ {print $2}' "$dir/wrk.txt")
    p50=$(awk '$1=="50%" {print $2}' "$dir/wrk.txt")
    p99=$(awk '$1=="99%" {print $2}' "$dir/wrk.txt")
    n=$(awk '/requests in/ {print $1}' "$dir/wrk.txt")
    printf '%-16s %-12s %10s req/s  p50 %8s  p99 %8s  cpu %6.2f us/req\n' "$label" "$path" "$rps" "$p50" "$p99" \
      "$(python3 -c "print(($t1 - $t0) * 1e6 / $(getconf CLK_TCK) / $n)")"
  done
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}

echo "machine: $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); wrk -t2 -c$conns -d${secs}s"
for r in $(seq "$rounds"); do
  run "without metrics" "$without"
  run "with metrics" "$with"
done
