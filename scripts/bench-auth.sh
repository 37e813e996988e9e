#!/usr/bin/env bash
# What authentication and rate limiting cost: wrk against GET /api/v1/auth/me on the real
# stack (API key in X-API-Key, every rate-limit bucket checked) and on the same application
# with a fixed principal instead, alternating runs, on this machine.
#
#   scripts/bench-auth.sh [DATABASE_URL]      needs wrk (apt-get install wrk)
#
# Env: DURATION (default 10s), CONNECTIONS (64), THREADS (1), ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zentoria/target}"
DURATION="${DURATION:-10s}"; CONNECTIONS="${CONNECTIONS:-64}"; THREADS="${THREADS:-1}"; ROUNDS="${ROUNDS:-3}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p zentoria-bench
OUT="$(mktemp)"
"$CARGO_TARGET_DIR/release/zentoria-bench" auth "${1:-}" >"$OUT" &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -f "$OUT" "$OUT.wrk"' EXIT
for _ in $(seq 100); do [ -s "$OUT" ] && break; sleep 0.1; done
read -r ENFORCED OPEN KEY < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["enforced"], d["open"], d["key"])' "$OUT")

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }

run() { # name url -> "rps p50 p99 server_cpu_us_per_request"
    local before after
    before="$(cpu_ticks)"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -H "X-API-Key: $KEY" "$2/api/v1/auth/me" >"$OUT.wrk"
    after="$(cpu_ticks)"
    python3 -c '
import re, sys
t = open(sys.argv[1]).read()
ticks = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
def ms(v, u): return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p = {k: ms(v, u) for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", t, re.M)}
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if non2xx: sys.exit("unexpected non-2xx responses: " + non2xx.group(1))
reqs = int(re.search(r"(\d+) requests in", t).group(1))
print("%.0f %.3f %.3f %.2f" % (rps, p["50"], p["99"], ticks * 1e6 / reqs))' "$OUT.wrk" "$before" "$after" "$(getconf CLK_TCK)"
}

# Warm both up, then alternate so drift hits both alike.
wrk -t1 -c8 -d2s -H "X-API-Key: $KEY" "$ENFORCED/api/v1/auth/me" >/dev/null
wrk -t1 -c8 -d2s -H "X-API-Key: $KEY" "$OPEN/api/v1/auth/me" >/dev/null
echo "round,variant,req_per_s,p50_ms,p99_ms,server_cpu_us_per_req"
for r in $(seq "$ROUNDS"); do
    echo "$r,auth+ratelimit,$(run enforced "$ENFORCED" | tr ' ' ',')"
    echo "$r,no-auth,$(run open "$OPEN" | tr ' ' ',')"
done
echo "# wrk -t$THREADS -c$CONNECTIONS -d$DURATION; $(nproc) cores; $(date -u +%Y-%m-%d)"
