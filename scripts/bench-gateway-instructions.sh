#!/usr/bin/env bash
# What one chat completion through the gateway costs Zentoria, in CPU instructions: `zentoria
# serve` (release, SQLite, a `chat` key, routed to `zentoria-bench fake-openai`) runs under
# valgrind's callgrind, a few requests warm it up, the counters are zeroed, then N requests are
# sent on 4 connections and the instructions Zentoria executed are divided by N. Instruction
# counts do not depend on what else the machine is doing, so two builds can be compared on a
# noisy VM; user space only (the kernel's socket work is not counted). Two counts: everything
# Zentoria executed, and what its HTTP serving threads executed (the requests' own work, which
# repeats within a few hundred instructions from run to run).
#
#   scripts/bench-gateway-instructions.sh            needs valgrind (apt-get install valgrind)
#
# Env: REQUESTS (default 400); STREAMS ("false true": whole answers, then streams); BIN (the
# directory holding zentoria and zentoria-bench; default: build them); TOP (0): also print the
# N functions with the most instructions of their own on the serving threads; KEEP=DIR keeps
# the serving threads' callgrind files.
# Background work that runs on a clock (the usage log's flush every second) weighs more here
# than in real use, as everything runs about 50 times slower under valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zentoria/target}"
REQUESTS="${REQUESTS:-400}"; STREAMS="${STREAMS:-false true}"; TOP="${TOP:-0}"; KEEP="${KEEP:-}"
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install valgrind" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then
    cargo build --release -q -p zentoria -p zentoria-bench
    BIN="$CARGO_TARGET_DIR/release"
fi
WORK="$(mktemp -d)"
cleanup() { kill "${UP_PID:-}" "${ZT_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/zentoria-bench" fake-openai 127.0.0.1:0 >"$WORK/up.addr" &
UP_PID=$!
for _ in $(seq 100); do [ -s "$WORK/up.addr" ] && break; sleep 0.05; done
export ZENTORIA_DATA_DIR="$WORK/data" ZENTORIA_LOG_LEVEL=warn ZENTORIA_RATE_LIMIT_PER_MINUTE=0 \
       ZENTORIA_OPENAI_BASE_URL="$(head -1 "$WORK/up.addr")" ZENTORIA_OPENAI_API_KEY=sk-bench \
       ZENTORIA_OLLAMA_URL=http://127.0.0.1:9
unset ZENTORIA_DATABASE_URL ZENTORIA_CONFIG
echo bench-password-1 | "$BIN/zentoria" users create --username bench --admin --password-stdin >/dev/null 2>&1
KEY="$("$BIN/zentoria" keys create --user bench --name gateway --scopes chat 2>/dev/null)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out" --dump-instr=no --separate-threads=yes \
    "$BIN/zentoria" serve --listen "127.0.0.1:$PORT" 2>"$WORK/zentoria.log" &
ZT_PID=$!
for _ in $(seq 600); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

send() { # stream requests connections
    python3 - "$KEY" "$PORT" "$1" "$2" "$3" <<'PY'
import http.client, sys, threading
key, port, stream, n, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
body = '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Say something short."}],"stream":%s}' % stream
def run(k):
    c = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(k):
        c.request("POST", "/v1/chat/completions", body, {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
        r = c.getresponse()
        text = r.read()
        if r.status != 200 or (b"data: [DONE]" if stream == "true" else b'"chat.completion"') not in text:
            sys.exit("unexpected answer: %d %r" % (r.status, text[:200]))
threads = [threading.Thread(target=run, args=(n // conns,)) for _ in range(conns)]
[t.start() for t in threads]
[t.join() for t in threads]
PY
}

echo "stream,requests,instructions_per_request,serving_threads_per_request"
part=0
for stream in $STREAMS; do
    send "$stream" 40 4
    callgrind_control -z "$ZT_PID" >/dev/null 2>&1
    send "$stream" "$REQUESTS" 4
    callgrind_control -d "$ZT_PID" >/dev/null 2>&1
    part=$((part + 1))
    # One file per thread: the serving threads' (see crates/zentoria/src/server.rs) carry the
    # requests; the others run work on a clock (the usage log's flush, the job poller), which
    # valgrind's slowness makes weigh more than in real use and vary from run to run.
    serving=()
    for f in "$WORK/cg.out.$part"-*; do grep -q "Shard::spawn" "$f" && serving+=("$f"); done
    python3 - "$REQUESTS" "${#serving[@]}" "$WORK/cg.out.$part"-* "${serving[@]}" <<'PY' | sed "s/^/$stream,$REQUESTS,/"
import sys
n, k, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def total(f):
    for line in open(f):
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    return 0
everything, serving = files[:len(files) - k], files[len(files) - k:]
print("%d,%d" % (sum(map(total, everything)) // n, sum(map(total, serving)) // n))
PY
    if [ "$TOP" -gt 0 ]; then
        # Own instructions of the serving threads, most first.
        for f in "${serving[@]}"; do callgrind_annotate --threshold=100 "$f" 2>/dev/null; done |
            python3 -c '
import re, sys
own, total = {}, 0
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*?)(?: \[.*\])?$", line)
    if not m: continue
    ir, share, name = int(m.group(1).replace(",", "")), float(m.group(2)), m.group(3)
    if "PROGRAM TOTALS" in name: total += ir; continue
    if share >= 50: continue  # the thread-entry frames, near 100%
    own[name] = own.get(name, 0) + ir
for name, ir in sorted(own.items(), key=lambda kv: -kv[1])[:int(sys.argv[1])]:
    print("#   %10d (%5.2f%%)  %s" % (ir, 100 * ir / total, name[:150]))' "$TOP"
    fi
    if [ -n "$KEEP" ]; then
        mkdir -p "$KEEP"
        i=0
        for f in "${serving[@]}"; do i=$((i + 1)); cp "$f" "$KEEP/stream-$stream-serving-$i.callgrind"; done
    fi
done
echo "# valgrind $(valgrind --version | sed 's/valgrind-//'); $(git rev-parse --short HEAD)$(git diff --quiet || echo +changes); $(date -u +%Y-%m-%d)"
