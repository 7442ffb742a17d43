#!/usr/bin/env bash
# HTTP load figures for the release build with wrk (Debian package `wrk`).
# Usage: benches/http_load.sh [seconds] [connections...]
# Starts a server on a temporary data dir and port, creates a user and an API token,
# then loads a few endpoints. Traffic goes to 127.0.0.1 only; everything stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
conns=("$@")
[ ${#conns[@]} -eq 0 ] && conns=(64 512)

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
bin=target/release/xagent
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
XAGENT_LOG=warn "$bin" serve --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

printf 'bench password 123\n' | XAGENT_LOG=warn "$bin" admin create-user --data-dir "$dir/data" --email bench@example.com --name Bench --password-stdin >/dev/null
login=$(curl -sf -c "$dir/jar" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench password 123"}' "$base/api/v1/auth/login")
csrf=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["csrf_token"])' <<<"$login")
org=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["current_organization_id"])' <<<"$login")
token=$(curl -sf -b "$dir/jar" -H "x-csrf-token: $csrf" -H 'content-type: application/json' \
  -d "{\"name\":\"bench\",\"organization_id\":\"$org\"}" "$base/api/v1/me/tokens" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

echo "machine: $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for c in "${conns[@]}"; do
  for path in /healthz /api/v1/me "/api/v1/orgs/$org"; do
    echo "== GET $path, $c connections, ${secs}s"
    wrk -t2 -c"$c" -d"${secs}s" --latency -H "Authorization: Bearer $token" "$base$path" |
      grep -E 'Requests/sec|Non-2xx|Socket errors|^ +50%|^ +99%'
  done
done
