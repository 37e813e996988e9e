#!/usr/bin/env bash
# What the OpenAI-compatible gateway adds: the same chat-completion load sent straight to a fake
# OpenAI upstream (`zentoria-bench fake-openai`) and through `zentoria serve` (release, SQLite,
# a `chat` key, routed to that upstream), at concurrency 1 and 64, whole answers and streams,
# alternating so drift hits both alike. Prints CSV; docs/BENCHMARKS.md has the numbers.
#
#   scripts/bench-gateway.sh            needs wrk (apt-get install wrk)
#
# Env: DURATION (default 10s), ROUNDS (2); RATES ("1000 2000 4000") and RATE_SECS (10) for the
# fixed-rate runs (zentoria-bench rate), RATE_ROUNDS (1) how often each is repeated (a p99 from one
# 10 s run moves by tenths of a millisecond between runs on a shared VM: compare medians); CLOSED=0 skips the closed-loop (wrk) runs; PIN=1 runs
# Zentoria on CPU 0 and the load generator and the fake upstream on CPU 1 (taskset), so the
# gateway has a core of its own as it would beside a remote provider; ZT_THREADS sets Zentoria's
# HTTP serving threads (ZENTORIA_HTTP_THREADS; default one per core), ZT_WORKERS the threads of
# its main runtime (TOKIO_WORKER_THREADS: jobs, indexing; default one per core). SEPARATE=1 gives each path its
# own fixed-rate run (direct, then through Zentoria) instead of interleaving both in one: the
# machine then carries the rate once, not twice, as it would with the generator and the provider
# elsewhere; a stall of the VM then hits one run and not the other, so compare several runs.
# PERF=1 counts, with perf stat on Zentoria (or nginx's workers) during each fixed-rate run through
# it, its CPU time, context switches and epoll_wait/futex/writev/recvfrom calls per request
# (apt-get install linux-perf; root). SCHED=1 records the scheduler (perf sched record, whole
# machine) during each fixed-rate run and prints, per process and thread name, how long its
# threads waited for a core once woken (p50/p90/p99/max ms) and how long they ran: where a tail
# comes from when the gateway's own time is short.
# STALLS (default 5) seconds of `zentoria-bench stalls` before and after the fixed-rate runs (0
# skips it): how often each CPU stops running a spinning thread with the machine otherwise idle
# (other processes, interrupts, or the hypervisor taking the virtual CPU away; a guest sees no
# steal time for that). Those gaps are the floor under every tail measured here, the direct
# path's included: at 4,000 requests/s a 2 ms gap delays the eight requests due during it.
# PEER=litellm (off by default) adds LiteLLM's proxy as a peer: a litellm row after each zentoria
# row, and in the fixed-rate runs a schedule of its own, direct vs litellm. It runs from the venv
# LITELLM_VENV (default ~/.cache/zentoria/litellm-venv, made as below) with no database, a fixed
# master key and no downloads at run time, routed to the same fake upstream, on Zentoria's CPU when
# PIN=1; LITELLM_WORKERS sets its worker processes (--num_workers; default 1, as LiteLLM's own);
# LITELLM_RATES (default RATES) the fixed rates it gets: above what it can answer, a run lasts
# until its backlog is drained.
#
#   python3 -m venv ~/.cache/zentoria/litellm-venv
#   ~/.cache/zentoria/litellm-venv/bin/pip install 'litellm[proxy]'
#
# PEER=nginx adds nginx as a plain reverse proxy to the same fake upstream (keep-alive upstream
# connections, no buffering, no logs; NGINX_WORKERS worker processes, default one per core, on
# Zentoria's CPU when PIN=1): what one proxy hop costs on this machine with no authentication,
# no JSON and no accounting — the floor under any gateway's added latency. It gets a row after
# each zentoria row, a fixed-rate run of its own with SEPARATE=1, or a third path interleaved
# with the other two otherwise. apt-get install nginx-light.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zentoria/target}"
DURATION="${DURATION:-10s}"; ROUNDS="${ROUNDS:-2}"; RATES="${RATES:-1000 2000 4000}"; RATE_SECS="${RATE_SECS:-10}"
RATE_ROUNDS="${RATE_ROUNDS:-1}"; STALLS="${STALLS:-5}"; CLOSED="${CLOSED:-1}"; PIN="${PIN:-0}"; PERF="${PERF:-0}"; SCHED="${SCHED:-0}"; ZT_WORKERS="${ZT_WORKERS:-}"; ZT_THREADS="${ZT_THREADS:-}"; SEPARATE="${SEPARATE:-0}"
PEER="${PEER:-}"; NGINX_WORKERS="${NGINX_WORKERS:-auto}"; LITELLM_WORKERS="${LITELLM_WORKERS:-1}"; LITELLM_RATES="${LITELLM_RATES:-$RATES}"
LITELLM_VENV="${LITELLM_VENV:-$HOME/.cache/zentoria/litellm-venv}"
if [ "$PIN" = 1 ]; then ON_GATEWAY=(taskset -c 0); ON_LOAD=(taskset -c 1); else ON_GATEWAY=(); ON_LOAD=(); fi
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
case "$PEER" in
    "") ;;
    litellm) [ -x "$LITELLM_VENV/bin/litellm" ] || {
        echo "PEER=litellm needs LiteLLM's proxy in $LITELLM_VENV; install it with:" >&2
        echo "  python3 -m venv $LITELLM_VENV && $LITELLM_VENV/bin/pip install 'litellm[proxy]'" >&2
        exit 1
    } ;;
    nginx) command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || {
        echo "PEER=nginx needs nginx: apt-get install nginx-light" >&2; exit 1; } ;;
    *) echo "PEER=$PEER: the peers known are litellm and nginx" >&2; exit 1 ;;
esac

cargo build --release -q -p zentoria -p zentoria-bench
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"
cleanup() { kill "${UP_PID:-}" "${ZT_PID:-}" "${LT_PID:-}" "${NG_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"${ON_LOAD[@]}" "$BIN/zentoria-bench" fake-openai 127.0.0.1:0 >"$WORK/up.addr" &
UP_PID=$!
for _ in $(seq 100); do [ -s "$WORK/up.addr" ] && break; sleep 0.05; done
UP="$(head -1 "$WORK/up.addr")" # http://127.0.0.1:PORT, no /v1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

if [ "$PEER" = litellm ]; then
    # Started first, as it takes a while to come up; ON_GATEWAY is still just the CPU pin here.
    # The LITELLM_LOCAL_* switches keep it from fetching its model cost map and other tables
    # from GitHub at startup (it falls back to the packaged copies after retries anyway).
    LT_KEY=sk-litellm-bench
    LT="http://127.0.0.1:$(free_port)"
    cat >"$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: gpt-4o-mini
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: $UP/v1
      api_key: sk-bench
general_settings:
  master_key: $LT_KEY
litellm_settings:
  set_verbose: false
YAML
    env -u DATABASE_URL -u LITELLM_MASTER_KEY LITELLM_LOG=ERROR LITELLM_TELEMETRY_DISABLED=true \
        LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS=True \
        LITELLM_LOCAL_AUTOROUTER_PRESETS=True LITELLM_LOCAL_BLOG_POSTS=True LITELLM_LOCAL_POLICY_TEMPLATES=True \
        "${ON_GATEWAY[@]}" "$LITELLM_VENV/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 \
        --port "${LT##*:}" --num_workers "$LITELLM_WORKERS" >"$WORK/litellm.log" 2>&1 &
    LT_PID=$!
fi

if [ "$PEER" = nginx ]; then
    NG="http://127.0.0.1:$(free_port)"
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes $NGINX_WORKERS;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    upstream fake { server ${UP#http://}; keepalive 256; }
    server {
        listen ${NG#http://};
        location / {
            proxy_pass http://fake;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
CONF
    "${ON_GATEWAY[@]}" "$(command -v nginx || echo /usr/sbin/nginx)" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" \
        -e "$WORK/nginx/error.log" &
    NG_PID=$!
    for _ in $(seq 100); do curl -s -o /dev/null "$NG/" && break; sleep 0.05; done
fi

export ZENTORIA_DATA_DIR="$WORK/data" ZENTORIA_LOG_LEVEL=warn ZENTORIA_RATE_LIMIT_PER_MINUTE=0 \
       ZENTORIA_OPENAI_BASE_URL="$UP" ZENTORIA_OPENAI_API_KEY=sk-bench ZENTORIA_OLLAMA_URL=http://127.0.0.1:9
unset ZENTORIA_DATABASE_URL ZENTORIA_CONFIG
echo bench-password-1 | "$BIN/zentoria" users create --username bench --admin --password-stdin >/dev/null
KEY="$("$BIN/zentoria" keys create --user bench --name gateway --scopes chat)"
PORT="$(free_port)"
if [ -n "$ZT_WORKERS" ]; then ON_GATEWAY=(env TOKIO_WORKER_THREADS="$ZT_WORKERS" "${ON_GATEWAY[@]}"); fi
if [ -n "$ZT_THREADS" ]; then ON_GATEWAY=(env ZENTORIA_HTTP_THREADS="$ZT_THREADS" "${ON_GATEWAY[@]}"); fi
"${ON_GATEWAY[@]}" "$BIN/zentoria" serve --listen "127.0.0.1:$PORT" 2>"$WORK/zentoria.log" &
ZT_PID=$!
ZT="http://127.0.0.1:$PORT"
for _ in $(seq 100); do curl -sf "$ZT/health" >/dev/null && break; sleep 0.05; done
if [ "$PEER" = litellm ]; then
    for _ in $(seq 1200); do
        curl -sf "$LT/health/liveliness" >/dev/null && break
        kill -0 "$LT_PID" 2>/dev/null || break
        sleep 0.1
    done
    # One answer through it, to be sure it routes to the fake upstream and takes the key.
    curl -sf "$LT/v1/chat/completions" -H "Authorization: Bearer $LT_KEY" -H "Content-Type: application/json" \
        -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say something short."}]}' |
        grep -q "quick brown fox" || { echo "LiteLLM is not answering from the fake upstream; its log:" >&2
                                       tail -n 40 "$WORK/litellm.log" >&2; exit 1; }
fi

lua() { # model stream [key] -> script path
    local f key="${3:-$KEY}"
    f="$WORK/req-$(echo "$1-$2" | tr '/:' '__')-$(echo "$key" | cksum | cut -d' ' -f1).lua"
    cat >"$f" <<LUA
wrk.method = "POST"
wrk.body = '{"model":"$1","messages":[{"role":"user","content":"Say something short."}],"stream":$2}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
LUA
    echo "$f"
}

tree() { local p; echo "$1"; for p in $(pgrep -P "$1" || true); do tree "$p"; done; } # pid + descendants
cpu_ticks() { # user + system time of a process and its descendants (LiteLLM's workers, if any)
    local p t=0
    for p in $(tree "$1"); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
user_ticks() { # the user-space part of cpu_ticks
    local p t=0
    for p in $(tree "$1"); do t=$((t + $(awk '{print $14}' "/proc/$p/stat" 2>/dev/null || echo 0))); done
    echo "$t"
}
rss() { # VmRSS of a process and its descendants (shared pages counted in each), as "N.N MB"
    local p
    for p in $(tree "$1"); do cat "/proc/$p/status" 2>/dev/null || true; done |
        awk '/VmRSS/ {kb += $2} END {printf "%.1f MB", kb/1024}'
}

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

run() { # url model stream connections pid [key] -> "rps p50 p99 cpu_us_per_request" (CPU of pid's tree)
    local before
    before="$(cpu_ticks "$5")"
    # A timeout well above any latency seen (wrk's 2 s default is within reach of a slow peer at
    # 64 connections), and a run with any fails: wrk leaves timed-out requests out of its stats.
    "${ON_LOAD[@]}" wrk -t1 -c"$4" -d"$DURATION" --timeout 30s --latency -s "$(lua "$2" "$3" "${6:-}")" \
        "$1/v1/chat/completions" >"$WORK/wrk.out"
    python3 -c '
import os, re, sys
t = open(sys.argv[1]).read()
def ms(v, u): return float(v) * {"us": 0.001, "ms": 1, "s": 1000}[u]
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if bad: sys.exit("unexpected non-2xx responses: " + bad.group(1) + "\n" + t)  # see the server log
late = re.search(r"Socket errors:.* timeout (\d+)", t)
if late and int(late.group(1)): sys.exit("requests timed out: " + late.group(1) + "\n" + t)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
n = int(re.search(r"(\d+) requests in", t).group(1))
p = {k: ms(v, u) for k, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", t, re.M)}
if len(p) < 2: sys.exit("no latency distribution (no request completed?)\n" + t)
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / os.sysconf("SC_CLK_TCK") * 1e6 / max(n, 1)
print("%.0f,%.3f,%.3f,%.0f" % (rps, p["50"], p["99"], cpu))' "$WORK/wrk.out" "$before" "$(cpu_ticks "$5")"
}

# Warm up the paths.
wrk -t1 -c8 -d2s -s "$(lua gpt-4o-mini false)" "$UP/v1/chat/completions" >/dev/null
wrk -t1 -c8 -d2s -s "$(lua openai/gpt-4o-mini false)" "$ZT/v1/chat/completions" >/dev/null
if [ "$PEER" = litellm ]; then
    wrk -t1 -c8 -d2s -s "$(lua gpt-4o-mini false "$LT_KEY")" "$LT/v1/chat/completions" >/dev/null
fi
if [ "$PEER" = nginx ]; then wrk -t1 -c8 -d2s -s "$(lua gpt-4o-mini false)" "$NG/v1/chat/completions" >/dev/null; fi
# cpu_us_per_req: CPU time (user + system) per request of the fake upstream (direct) or of
# Zentoria alone (through), or of LiteLLM's processes (litellm).
# own_mean_ms, own_p99_le_ms: Zentoria's own time as it reports it (x-zentoria-overhead-ms,
# from its histogram; the p99 as the bucket bound holding it).
echo "round,stream,connections,path,req_per_s,p50_ms,p99_ms,cpu_us_per_req,own_mean_ms,own_p99_le_ms"
[ "$CLOSED" = 1 ] || ROUNDS=0
for r in $(seq "$ROUNDS"); do
    for stream in false true; do
        for c in 1 64; do
            line="$(run "$UP" gpt-4o-mini "$stream" "$c" "$UP_PID")" # (an assignment, so a failure stops the script)
            echo "$r,$stream,$c,direct,$line,-,-"
            before="$(own_hist "$stream")"
            line="$(run "$ZT" openai/gpt-4o-mini "$stream" "$c" "$ZT_PID")"
            echo "$r,$stream,$c,zentoria,$line,$(own_between "$before" "$(own_hist "$stream")")"
            if [ "$PEER" = litellm ]; then
                line="$(run "$LT" gpt-4o-mini "$stream" "$c" "$LT_PID" "$LT_KEY")"
                echo "$r,$stream,$c,litellm,$line,-,-"
            fi
            if [ "$PEER" = nginx ]; then
                line="$(run "$NG" gpt-4o-mini "$stream" "$c" "$NG_PID")"
                echo "$r,$stream,$c,nginx,$line,-,-"
            fi
        done
    done
done

# The same request rate on both paths in one schedule (open loop: latency counted from when each
# request was due; the two paths' requests interleaved, so the VM's stalls hit both alike).
# own_*: the gateway's own time per request as each answer's x-zentoria-overhead-ms reports it.
# With PEER=litellm, LiteLLM gets a schedule of its own right after, beside a direct path of its
# own (direct(litellm run)), so a peer falling behind cannot load Zentoria's run; req_per_s is
# answers over the time until the last answer of either path, so there it is LiteLLM's for both.
rate_rows() { # round rate stream path... <JSON lines of zentoria-bench rate, one per path -> CSV rows
    python3 -c '
import json, sys
for path, line in zip(sys.argv[4:], sys.stdin):
    r = json.loads(line)
    own = ",".join("%.3f" % r[k] if k in r else "-" for k in ("own_p50_ms", "own_p99_ms", "own_p999_ms"))
    print("%s,%s,%s,%s,%.0f,%.3f,%.3f,%.3f,%.3f,%d,%s" % (sys.argv[1], sys.argv[2], sys.argv[3], path, r["achieved_per_s"], r["p50_ms"], r["p90_ms"], r["p99_ms"], r["p999_ms"], r["errors"], own))' "$@" |
        tee -a "$WORK/rows.csv"
}
# With RATE_ROUNDS > 1: per rate, kind and path, the median over the rounds of p50 and p99 and of
# what the path added to the same round's direct path (a single run's p99 on a VM that stalls is
# one draw; the median of several is the figure to compare), with the rounds' range.
rate_summary() {
    [ "$RATE_ROUNDS" -gt 1 ] || return 0
    python3 - "$WORK/rows.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
# Each path against the direct run it was measured beside: LiteLLM's schedule has its own.
direct = {(r[0], r[1], r[2], r[3]): r for r in rows if r[3].startswith("direct")}
groups = {}
for r in rows:
    if r[3].startswith("direct"):
        continue
    d = direct.get((r[0], r[1], r[2], "direct(litellm run)" if r[3] == "litellm" else "direct"))
    groups.setdefault((int(r[1]), r[2], r[3]), []).append(
        (float(r[5]), float(r[7]), float(r[5]) - float(d[5]) if d else None, float(r[7]) - float(d[7]) if d else None))
print("# summary, medians over the rounds: rate,stream,path,p50_ms,p99_ms,added_p50_ms,added_p99_ms,added_p99_range_ms")
for (rate, stream, path), runs in sorted(groups.items()):
    med = lambda i: statistics.median(x[i] for x in runs if x[i] is not None)
    added = [x[3] for x in runs if x[3] is not None]
    if not added:
        print("# %d,%s,%s,%.3f,%.3f,-,-,-" % (rate, stream, path, med(0), med(1)))
        continue
    print("# %d,%s,%s,%.3f,%.3f,%+.3f,%+.3f,%+.2f..%+.2f" % (rate, stream, path, med(0), med(1), med(2), med(3), min(added), max(added)))
PY
}
# One fixed-rate run of the generator at rate $1 (stream $2) on the paths named after them
# (direct, zentoria: each gets the rate, interleaved), then a comment line saying where the
# cores went: CPU per request of the generator (per request sent), of the fake upstream (per
# answer) and of Zentoria (per request through it; idle work only when it had none).
listed() { local x="$1" y; shift; for y in "$@"; do [ "$x" = "$y" ] && return 0; done; return 1; }
rate_run() {
    local rate="$1" stream="$2" up0 zt0 ng0 args=() path
    shift 2
    for path in "$@"; do
        case "$path" in
            zentoria) args+=("$ZT/v1/chat/completions") ;;
            nginx) args+=("$NG/v1/chat/completions") ;;
            *) args+=("$UP/v1/chat/completions") ;;
        esac
        args+=("$WORK/body-$stream-$path.json")
    done
    up0="$(cpu_ticks "$UP_PID")"; zt0="$(cpu_ticks "$ZT_PID")"; ng0="$(cpu_ticks "${NG_PID:-$ZT_PID}")"
    local ztu0 ngu0
    ztu0="$(user_ticks "$ZT_PID")"; ngu0="$(user_ticks "${NG_PID:-$ZT_PID}")"
    local perf_pid="" perf_on="" perf_pids=""
    if [ "$PERF" = 1 ] && listed zentoria "$@"; then perf_on=zentoria; perf_pids="$ZT_PID"
    elif [ "$PERF" = 1 ] && listed nginx "$@"; then perf_on=nginx; perf_pids="$(pgrep -d, -P "$NG_PID")"; fi
    if [ -n "$perf_on" ]; then
        perf stat -x, -o "$WORK/perf.csv" -e task-clock,context-switches,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom \
            -p "$perf_pids" -- sleep "$RATE_SECS" &
        perf_pid=$!
    fi
    local sched_pid=""
    if [ "$SCHED" = 1 ]; then
        perf sched record -a -o "$WORK/sched.data" -- sleep "$RATE_SECS" >/dev/null 2>&1 &
        sched_pid=$!
    fi
    "${ON_LOAD[@]}" "$BIN/zentoria-bench" rate "$rate" "$RATE_SECS" "$KEY" 64 "${args[@]}" >"$WORK/rate.json"
    rate_rows "$rr" "$rate" "$stream" "$@" <"$WORK/rate.json"
    if [ -n "$sched_pid" ]; then
        wait "$sched_pid"
        perf sched timehist -i "$WORK/sched.data" 2>/dev/null | python3 -c '
import collections, re, sys
names = {sys.argv[1]: "upstream", sys.argv[2]: "zentoria"}
names.update((p, "nginx") for p in sys.argv[3].split(",") if p)
delay, ran = collections.defaultdict(list), collections.defaultdict(float)
for line in sys.stdin:
    m = re.match(r"\s*[\d.]+\s+\[\d+\]\s+(.+?)\[(\d+)(?:/(\d+))?\]\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", line)
    if not m: continue
    comm, pid = m.group(1).strip(), m.group(3) or m.group(2)
    who = names.get(pid, "generator" if comm.startswith(("zentoria-bench", "tokio")) else "other")
    key = "%s %s" % (who, re.sub(r"[-_]?\d+$", "", comm))
    delay[key].append(float(m.group(5))); ran[key] += float(m.group(6))
q = lambda v, p: v[min(len(v) - 1, int(p * len(v)))]
for k, v in sorted(delay.items(), key=lambda kv: -ran[kv[0]]):
    if len(v) < 100: continue
    v.sort()
    print("# sched %s: %d runs, waited for a core p50 %.3f p90 %.3f p99 %.3f max %.3f ms, ran %.0f ms" % (
        k, len(v), q(v, .5), q(v, .9), q(v, .99), v[-1], ran[k]))' "$UP_PID" "$ZT_PID" "$(pgrep -d, -P "${NG_PID:-0}" || true)"
    fi
    if [ -n "$perf_pid" ]; then
        wait "$perf_pid"
        python3 -c '
import csv, sys
n = float(sys.argv[1]) * float(sys.argv[2])
v = {r[2]: float(r[0]) for r in csv.reader(l for l in open(sys.argv[3]) if l[0].isdigit())}
print("# perf stat on %s, per request: CPU %.0f us, context switches %.2f, epoll_wait %.2f, futex %.2f, writev %.2f, recvfrom %.2f" % (
    sys.argv[4], v["task-clock"] * 1000 / n, v["context-switches"] / n,
    v["syscalls:sys_enter_epoll_wait"] / n, v["syscalls:sys_enter_futex"] / n,
    v["syscalls:sys_enter_writev"] / n, v["syscalls:sys_enter_recvfrom"] / n))' "$rate" "$RATE_SECS" "$WORK/perf.csv" "$perf_on"
    fi
    python3 -c '
import json, sys
rate, secs, up, zt, ng, hz, ztu, ngu = (float(x) for x in sys.argv[1:9])
paths = sys.argv[11:]
gen = json.loads(open(sys.argv[9]).readline())["generator_cpu_ms"] * 1000
n = rate * secs
user = lambda u, t: " (user %.0f%%)" % (100 * u / t) if t else ""
zt_us = "%.0f%s" % (zt / hz * 1e6 / n, user(ztu, zt)) if "zentoria" in paths else "idle"
ng_us = ", nginx %.0f%s" % (ng / hz * 1e6 / n, user(ngu, ng)) if "nginx" in paths else ""
ng = ng if "nginx" in paths else 0
print("# rate %d stream %s paths %s: CPU us/request: generator %.0f, upstream %.0f, zentoria %s%s; cores busy: %.2f" % (
    rate, sys.argv[10], "+".join(paths), gen / (len(paths) * n), up / hz * 1e6 / (len(paths) * n), zt_us, ng_us,
    (gen / 1e6 + (up + zt + ng) / hz) / secs))' \
        "$rate" "$RATE_SECS" "$(($(cpu_ticks "$UP_PID") - up0))" "$(($(cpu_ticks "$ZT_PID") - zt0))" \
        "$(($(cpu_ticks "${NG_PID:-$ZT_PID}") - ng0))" "$(getconf CLK_TCK)" \
        "$(($(user_ticks "$ZT_PID") - ztu0))" "$(($(user_ticks "${NG_PID:-$ZT_PID}") - ngu0))" "$WORK/rate.json" "$stream" "$@"
}
all_rates="$RATES"
if [ "$PEER" = litellm ]; then all_rates="$(echo "$RATES $LITELLM_RATES" | tr -s ' ' '\n' | sort -nu)"; fi
stalls() { if [ "$STALLS" != 0 ]; then echo "# machine idle $1 the fixed-rate runs:"; "$BIN/zentoria-bench" stalls "$STALLS"; fi; }
stalls before
echo "round,rate,stream,path,req_per_s,p50_ms,p90_ms,p99_ms,p999_ms,errors,own_p50_ms,own_p99_ms,own_p999_ms"
for rr in $(seq "$RATE_ROUNDS"); do
for rate in $all_rates; do
    for stream in false true; do
        for path in direct zentoria litellm nginx; do
            if [ "$path" = zentoria ]; then model=openai/gpt-4o-mini; else model=gpt-4o-mini; fi
            printf '{"model":"%s","messages":[{"role":"user","content":"Say something short."}],"stream":%s}' \
                "$model" "$stream" >"$WORK/body-$stream-$path.json"
        done
        # shellcheck disable=SC2086 # the lists split on spaces
        if listed "$rate" $RATES; then
            peers=(); [ "$PEER" = nginx ] && peers=(nginx)
            if [ "$SEPARATE" = 1 ]; then
                rate_run "$rate" "$stream" direct
                rate_run "$rate" "$stream" zentoria
                for path in "${peers[@]}"; do rate_run "$rate" "$stream" "$path"; done
            else
                rate_run "$rate" "$stream" direct zentoria "${peers[@]}"
            fi
        fi
        # shellcheck disable=SC2086
        if [ "$PEER" = litellm ] && listed "$rate" $LITELLM_RATES; then
            "${ON_LOAD[@]}" "$BIN/zentoria-bench" rate "$rate" "$RATE_SECS" "$LT_KEY" 64 \
                "$UP/v1/chat/completions" "$WORK/body-$stream-direct.json" \
                "$LT/v1/chat/completions" "$WORK/body-$stream-litellm.json" |
                rate_rows "$rr" "$rate" "$stream" "direct(litellm run)" litellm
        fi
    done
done
done
stalls after
rate_summary
echo "# zentoria RSS after the runs: $(awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$ZT_PID/status")"
if [ "$PEER" = litellm ]; then
    echo "# litellm RSS after the runs: $(rss "$LT_PID") (processes: $(tree "$LT_PID" | wc -l))"
    echo "# litellm $("$LITELLM_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))'), uvicorn, LITELLM_WORKERS=$LITELLM_WORKERS"
fi
if [ "$PEER" = nginx ]; then echo "# nginx RSS after the runs: $(rss "$NG_PID"); $(nginx -v 2>&1), worker_processes $NGINX_WORKERS"; fi
echo "# wrk -t1 -d$DURATION; $(nproc) cores; PIN=$PIN; ZT_THREADS=${ZT_THREADS:-cores}; ZT_WORKERS=${ZT_WORKERS:-cores}; SEPARATE=$SEPARATE; $(date -u +%Y-%m-%d)"
