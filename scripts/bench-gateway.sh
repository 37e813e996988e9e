#!/usr/bin/env bash
# What the OpenAI-compatible gateway adds: the same chat-completion load sent straight to a fake
# OpenAI upstream (`zentoria-bench fake-openai`) and through `zentoria serve` (release, SQLite,
# a `chat` key, routed to that upstream), at concurrency 1 and 64, whole answers and streams,
# alternating so drift hits both alike. Prints CSV; docs/BENCHMARKS.md has the numbers.
#
#   scripts/bench-gateway.sh            needs wrk (apt-get install wrk)
#
# Env: DURATION (default 10s), ROUNDS (2); RATES ("1000 2000 4000") and RATE_SECS (10) for the
# fixed-rate runs (zentoria-bench rate); CLOSED=0 skips the closed-loop (wrk) runs; PIN=1 runs
# Zentoria on CPU 0 and the load generator and the fake upstream on CPU 1 (taskset), so the
# gateway has a core of its own as it would beside a remote provider; ZT_WORKERS sets Zentoria's
# runtime threads (TOKIO_WORKER_THREADS; default one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zentoria/target}"
DURATION="${DURATION:-10s}"; ROUNDS="${ROUNDS:-2}"; RATES="${RATES:-1000 2000 4000}"; RATE_SECS="${RATE_SECS:-10}"
CLOSED="${CLOSED:-1}"; PIN="${PIN:-0}"; ZT_WORKERS="${ZT_WORKERS:-}"
if [ "$PIN" = 1 ]; then ON_GATEWAY=(taskset -c 0); ON_LOAD=(taskset -c 1); else ON_GATEWAY=(); ON_LOAD=(); fi
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release -q -p zentoria -p zentoria-bench
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"
cleanup() { kill "${UP_PID:-}" "${ZT_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"${ON_LOAD[@]}" "$BIN/zentoria-bench" fake-openai 127.0.0.1:0 >"$WORK/up.addr" &
UP_PID=$!
for _ in $(seq 100); do [ -s "$WORK/up.addr" ] && break; sleep 0.05; done
UP="$(head -1 "$WORK/up.addr")"

export ZENTORIA_DATA_DIR="$WORK/data" ZENTORIA_LOG_LEVEL=warn ZENTORIA_RATE_LIMIT_PER_MINUTE=0 \
       ZENTORIA_OPENAI_BASE_URL="$UP" ZENTORIA_OPENAI_API_KEY=sk-bench ZENTORIA_OLLAMA_URL=http://127.0.0.1:9
unset ZENTORIA_DATABASE_URL ZENTORIA_CONFIG
echo bench-password-1 | "$BIN/zentoria" users create --username bench --admin --password-stdin >/dev/null
KEY="$("$BIN/zentoria" keys create --user bench --name gateway --scopes chat)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
if [ -n "$ZT_WORKERS" ]; then ON_GATEWAY=(env TOKIO_WORKER_THREADS="$ZT_WORKERS" "${ON_GATEWAY[@]}"); fi
"${ON_GATEWAY[@]}" "$BIN/zentoria" serve --listen "127.0.0.1:$PORT" 2>"$WORK/zentoria.log" &
ZT_PID=$!
ZT="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$ZT/health" >/dev/null && break; sleep 0.05; done

lua() { # model stream -> script path
    local f
    f="$WORK/req-$(echo "$1-$2" | tr '/:' '__').lua"
    cat >"$f" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"$1","messages":[{"role":"user","content":"Say something short."}],"stream":$2}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
    echo "$f"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # user + system time of a process

# Zentoria's own-time histogram (zentoria_gateway_overhead_seconds) for stream=$1, as JSON.
own_hist() {
    curl -sf "$ZT/metrics" | python3 -c '
import json, re, sys
want = "stream=\"%s\"" % sys.argv[1]
h = {"buckets": {}, "sum": 0.0, "count": 0}
for line in sys.stdin:
    if not line.startswith("zentoria_gateway_overhead_seconds") or want not in line: continue
    name, value = line.rsplit(" ", 1)
    if "_bucket" in name: h["buckets"][re.search(r"le=\"([^\"]+)\"", name).group(1)] = float(value)
    elif name.split("{")[0].endswith("_sum"): h["sum"] = float(value)
    elif name.split("{")[0].endswith("_count"): h["count"] = int(float(value))
print(json.dumps(h))' "$1"
}

# From two own_hist snapshots: "mean_ms,p99_le_ms" of the requests between them (the p99 as the
# upper bound of the bucket holding it).
own_between() {
    python3 -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
n = b["count"] - a["count"]
if n <= 0: print("-,-"); sys.exit()
mean = (b["sum"] - a["sum"]) / n * 1000
les = sorted((float(k), v - a["buckets"].get(k, 0)) for k, v in b["buckets"].items())
p99 = next(le for le, c in les if c >= 0.99 * n)
print("%.3f,%s" % (mean, "%g" % (p99 * 1000)))' "$1" "$2"
}

run() { # url model stream connections pid -> "rps p50 p99 cpu_us_per_request" (CPU of pid)
    local before
    before="$(cpu_ticks "$5")"
    "${ON_LOAD[@]}" wrk -t1 -c"$4" -d"$DURATION" --latency -s "$(lua "$2" "$3")" "$1/v1/chat/completions" >"$WORK/wrk.out"
    python3 -c '
import os, re, sys
t = open(sys.argv[1]).read()
def ms(v, u): return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if bad: sys.exit("unexpected non-2xx responses: " + bad.group(1) + "\n" + t)  # see the server log
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
n = int(re.search(r"(\d+) requests in", t).group(1))
p = {k: ms(v, u) for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", t, re.M)}
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / os.sysconf("SC_CLK_TCK") * 1e6 / max(n, 1)
print("%.0f,%.3f,%.3f,%.0f" % (rps, p["50"], p["99"], cpu))' "$WORK/wrk.out" "$before" "$(cpu_ticks "$5")"
}

# Warm up both paths.
wrk -t1 -c8 -d2s -s "$(lua gpt-4o-mini false)" "$UP/v1/chat/completions" >/dev/null
wrk -t1 -c8 -d2s -s "$(lua openai/gpt-4o-mini false)" "$ZT/v1/chat/completions" >/dev/null
# cpu_us_per_req: CPU time (user + system) per request of the fake upstream (direct) or of
# Zentoria alone (through).
# own_mean_ms, own_p99_le_ms: Zentoria's own time as it reports it (x-zentoria-overhead-ms,
# from its histogram; the p99 as the bucket bound holding it).
echo "round,stream,connections,path,req_per_s,p50_ms,p99_ms,cpu_us_per_req,own_mean_ms,own_p99_le_ms"
[ "$CLOSED" = 1 ] || ROUNDS=0
for r in $(seq "$ROUNDS"); do
    for stream in false true; do
        for c in 1 64; do
            echo "$r,$stream,$c,direct,$(run "$UP" gpt-4o-mini "$stream" "$c" "$UP_PID"),-,-"
            before="$(own_hist "$stream")"
            line="$(run "$ZT" openai/gpt-4o-mini "$stream" "$c" "$ZT_PID")"
            echo "$r,$stream,$c,zentoria,$line,$(own_between "$before" "$(own_hist "$stream")")"
        done
    done
done

# The same request rate on both paths in one schedule (open loop: latency counted from when each
# request was due; the two paths' requests interleaved, so the VM's stalls hit both alike).
# own_*: the gateway's own time per request as each answer's x-zentoria-overhead-ms reports it.
echo "rate,stream,path,req_per_s,p50_ms,p90_ms,p99_ms,p999_ms,errors,own_p50_ms,own_p99_ms,own_p999_ms"
for rate in $RATES; do
    for stream in false true; do
        for path in direct zentoria; do
            if [ "$path" = direct ]; then model=gpt-4o-mini; else model=openai/gpt-4o-mini; fi
            printf '{"model":"%s","messages":[{"role":"user","content":"Say something short."}],"stream":%s}' \
                "$model" "$stream" >"$WORK/body-$stream-$path.json"
        done
        "${ON_LOAD[@]}" "$BIN/zentoria-bench" rate "$rate" "$RATE_SECS" "$KEY" 64 \
            "$UP/v1/chat/completions" "$WORK/body-$stream-direct.json" \
            "$ZT/v1/chat/completions" "$WORK/body-$stream-zentoria.json" |
            python3 -c '
import json, sys
for path, line in zip(["direct", "zentoria"], sys.stdin):
    r = json.loads(line)
    own = ",".join("%.3f" % r[k] if k in r else "-" for k in ("own_p50_ms", "own_p99_ms", "own_p999_ms"))
    print("%s,%s,%s,%.0f,%.3f,%.3f,%.3f,%.3f,%d,%s" % (sys.argv[1], sys.argv[2], path, r["achieved_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["p999_ms"], r["errors"], own))' "$rate" "$stream"
    done
done
echo "# zentoria RSS after the runs: $(awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$ZT_PID/status")"
echo "# wrk -t1 -d$DURATION; $(nproc) cores; PIN=$PIN; ZT_WORKERS=${ZT_WORKERS:-cores}; $(date -u +%Y-%m-%d)"
