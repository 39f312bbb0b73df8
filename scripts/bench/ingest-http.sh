#!/usr/bin/env bash
# HTTP ingest load benchmark: wrk against `provenant up` (release build, embedded log, fsync'd
# group commit) posting CloudEvents batches, next to wrk against GET /healthz on the same
# server in the same run (the HTTP stack's own ceiling). Both wrk and the server share this
# machine's cores, as they would on a one-box install.
#   scripts/bench/ingest-http.sh [DURATION_SECONDS] [BATCH]
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-10}"
BATCH="${2:-100}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/provenant/target}"
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
cargo build -q --release -p provenant
BIN="$CARGO_TARGET_DIR/release/provenant"
WORK="$(mktemp -d)"
trap 'kill "$UP" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$BIN" up --data-dir "$WORK/data" --http "127.0.0.1:$PORT" >/dev/null 2>&1 &
UP=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

python3 - "$BATCH" > "$WORK/batch.json" <<'PY'
import json, sys
n = int(sys.argv[1])
digest = "sha256:" + "9b2f4c1d8e7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
print(json.dumps([{
    "specversion": "1.0", "id": f"rt-{i:06}", "source": "https://k8s.acme.example/prod",
    "type": "io.provenant.runtime.v1", "time": "2026-11-23T10:00:00Z",
    "data": {"instance_id": f"shop-{i % 50}", "service": "shop", "environment": "production",
             "deploy_id": "deploy-42", "artifact_digest": digest,
             "message": "started; serving on :8080 after 1.2s warm-up"}} for i in range(n)]))
PY
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/cloudevents-batch+json"
local f = io.open("$WORK/batch.json", "r")
wrk.body = f:read("*a")
f:close()
LUA
BYTES=$(wc -c < "$WORK/batch.json")
echo "batch: $BATCH events, $BYTES bytes; wrk -t2 -c16 -d${DURATION}s; $(nproc) cores shared by wrk and the server"
wrk -t2 -c16 -d"${DURATION}s" "http://127.0.0.1:$PORT/healthz" > "$WORK/health.txt"
wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:$PORT/v1/events" > "$WORK/ingest.txt"
grep -q "Non-2xx" "$WORK/ingest.txt" && { echo "ingest answered non-2xx:"; cat "$WORK/ingest.txt"; exit 1; }
H=$(awk '/Requests\/sec/ {print $2}' "$WORK/health.txt")
I=$(awk '/Requests\/sec/ {print $2}' "$WORK/ingest.txt")
IL=$(awk '/Latency/ {print $2; exit}' "$WORK/ingest.txt")
HL=$(awk '/Latency/ {print $2; exit}' "$WORK/health.txt")
python3 - "$H" "$I" "$BATCH" "$HL" "$IL" <<'PY'
import sys
h, i, b = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print("| measure | POST /v1/events (batch of %d) | GET /healthz (baseline) |" % b)
print("|---|---:|---:|")
print("| requests/s | %.0f | %.0f |" % (i, h))
print("| events/s | %.0f | — |" % (i * b))
print("| mean latency | %s | %s |" % (sys.argv[5], sys.argv[4]))
print("| ingest requests/s ÷ healthz requests/s | %.3f | |" % (i / h))
PY
