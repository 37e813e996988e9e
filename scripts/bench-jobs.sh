#!/usr/bin/env bash
# The durable job queue with no-op jobs on SQLite and PostgreSQL, beside Celery 5 on Redis doing
# the same, in one run:
#
#   scripts/bench-jobs.sh [N]     needs PostgreSQL on 127.0.0.1:5432, Redis on 127.0.0.1:6379,
#                                 pip install celery redis packaging
#
# Each line is JSON: drain_jobs_per_s (N jobs queued, then drained), enqueue_per_s, and the
# enqueue->start latency p50/p99 under a steady 1,000 jobs/s.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/zentoria/target}"
N="${1:-20000}"
PG="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
cargo build --release -q -p zentoria-bench
BENCH="$CARGO_TARGET_DIR/release/zentoria-bench"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"; psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS zt_bench_jobs" >/dev/null 2>&1 || true' EXIT

echo "# $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, N=$N"
for c in 64 256; do
    "$BENCH" jobs "sqlite://$TMP/jobs-$c.db" "$N" "$c" 1000 5
    PGOPTIONS="--client-min-messages=warning" psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS zt_bench_jobs" -c "CREATE DATABASE zt_bench_jobs" >/dev/null
    "$BENCH" jobs "$PG/zt_bench_jobs" "$N" "$c" 1000 5
done
python3 scripts/bench_celery.py "$N" prefork "$(nproc)" 1000 5
python3 scripts/bench_celery.py "$N" threads 64 1000 5
