#!/usr/bin/env bash
# `xagent backup` of a live server under 16 concurrent writers, for databases of about
# 100 MB and 1 GB, against the release build. See benches/README.md ("Live backup").
#
# Usage: benches/backup.sh [sizes_mb...]   (default: 100 1000)
# Honors CARGO_TARGET_DIR. For each size: seeds a fresh data dir (benches/backup.rs seed),
# starts the server on 127.0.0.1 and a free port, runs benches/backup.rs run (16 writers,
# the backup after 3 s of writing), stops the server. Everything is bounded and local.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000)
target=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet
bench=$(cargo bench --bench backup --no-run 2>&1 | sed -n 's/.*Executable benches\/backup.rs (\(.*\))/\1/p')
bin=$target/release/xagent
echo "machine: $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(df -h --output=fstype,avail /tmp | tail -1 | xargs) free in /tmp"

for mb in "${sizes[@]}"; do
  dir=$(mktemp -d)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  addr="127.0.0.1:$port"
  echo "== ${mb} MB"
  "$bench" seed "$dir/data" "$mb"
  XAGENT_LOG='warn' "$bin" serve --data-dir "$dir/data" --listen "$addr" >"$dir/server.log" 2>&1 &
  pid=$!
  trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 100); do curl -sf "http://$addr/healthz" >/dev/null && break; sleep 0.1; done
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  timeout 600 "$bench" run "$addr" "$dir/data" "$bin" 16 3
  kill -TERM $pid; wait $pid 2>/dev/null || true
  echo "server warnings/errors: $(grep -ciE 'warn|error' "$dir/server.log" || true)"
  grep -iE 'warn|error' "$dir/server.log" | head -3 || true
  rm -rf "$dir"
  trap - EXIT
done
