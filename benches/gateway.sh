#!/usr/bin/env bash
# Gateway overhead: the same chat completion sent straight to a mock upstream and through
# xagent (token auth, key resolution and decryption, quota reservation, metering through
# the group-commit writer), at 50 and 200 connections, in one run, release build.
# Usage: benches/gateway.sh [seconds] [connections...]   (defaults: 10, 50 200)
# Honors CARGO_TARGET_DIR. Traffic stays on 127.0.0.1; everything stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
conns=("$@")
[ ${#conns[@]} -eq 0 ] && conns=(50 200)
target=${CARGO_TARGET_DIR:-target}

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)"; exit 1; }
cargo build --release --quiet
mock=$(cargo bench --bench gateway --no-run 2>&1 | sed -n 's/.*Executable benches\/gateway.rs (\(.*\))/\1/p')
bin=$target/release/xagent
dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mport=$(free_port)
port=$(free_port)
base="http://127.0.0.1:$port"
"$mock" mock "127.0.0.1:$mport" >"$dir/mock.log" 2>&1 &
mpid=$!
XAGENT_LOG=warn "$bin" serve --allow-private-targets --data-dir "$dir/data" --listen "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid $mpid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done

printf 'bench password 123\n' | XAGENT_LOG=warn "$bin" admin create-user --data-dir "$dir/data" --email bench@example.com --name Bench --password-stdin >/dev/null
login=$(curl -sf -c "$dir/jar" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","password":"bench password 123"}' "$base/api/v1/auth/login")
csrf=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["csrf_token"])' <<<"$login")
org=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["current_organization_id"])' <<<"$login")
curl -sf -b "$dir/jar" -X PUT -H "x-csrf-token: $csrf" -H 'content-type: application/json' \
  -d "{\"api_key\":\"sk-bench-0000-0000-0000\",\"base_url\":\"http://127.0.0.1:$mport/v1\"}" \
  "$base/api/v1/orgs/$org/llm/providers/openai" >/dev/null
token=$(curl -sf -b "$dir/jar" -H "x-csrf-token: $csrf" -H 'content-type: application/json' \
  -d "{\"name\":\"bench\",\"organization_id\":\"$org\"}" "$base/api/v1/me/tokens" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

cat >"$dir/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"model":"gpt-bench","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":16}'
wrk.headers["Content-Type"] = "application/json"
LUA
curl -sf -H "Authorization: Bearer $token" -H 'content-type: application/json' \
  -d '{"model":"gpt-bench","messages":[{"role":"user","content":"hi"}]}' "$base/v1/chat/completions" >/dev/null

echo "machine: $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for c in "${conns[@]}"; do
  echo "== direct to the mock, $c connections, ${secs}s"
  wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"${secs}s" --latency -s "$dir/post.lua" "http://127.0.0.1:$mport/v1/chat/completions" |
    grep -E 'Requests/sec|Non-2xx|Socket errors|^ +50%|^ +90%|^ +99%'
  echo "== through xagent, $c connections, ${secs}s"
  wrk -t"$(( c < 2 ? 1 : 2 ))" -c"$c" -d"${secs}s" --latency -s "$dir/post.lua" -H "Authorization: Bearer $token" \
    "$base/v1/chat/completions" |
    grep -E 'Requests/sec|Non-2xx|Socket errors|^ +50%|^ +90%|^ +99%'
done
metered=$(sqlite3 "file:$dir/data/xagent.db?mode=ro" "SELECT COUNT(*), SUM(status_code = 200) FROM usage_events" 2>/dev/null || echo "?")
echo "usage events recorded (count|ok): $metered"
echo "server warnings/errors: $(grep -ciE 'warn|error' "$dir/server.log" || true)"
