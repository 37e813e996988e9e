#!/usr/bin/env python3
"""Celery 5 on Redis doing the same no-op jobs as `zentoria-bench jobs`, for docs/BENCHMARKS.md.

    python3 scripts/bench_celery.py [N] [POOL] [CONCURRENCY] [RATE] [SECS]

1. N tasks are published with the worker stopped, then a worker drains them: tasks/s, timed
   from the first task to the last (worker start-up excluded).
2. With the worker running, tasks are published one by one at RATE per second for SECS
   seconds; each records (start time - publish time): p50/p99 enqueue->start latency.

Each task does one Redis INCR (and, in phase 2, one RPUSH) so completion can be observed:
Celery with ignore_result has no other signal. Needs `pip install celery redis` and a Redis
on 127.0.0.1:6379 (database 15 is used and flushed).
"""
import json
import os
import subprocess
import sys
import tempfile
import time

import redis

N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
POOL = sys.argv[2] if len(sys.argv) > 2 else "prefork"
CONCURRENCY = int(sys.argv[3]) if len(sys.argv) > 3 else 2
RATE = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
SECS = int(sys.argv[5]) if len(sys.argv) > 5 else 5
BROKER = "redis://127.0.0.1:6379/15"

TASKS = '''
import time
import redis
from celery import Celery

app = Celery("bench", broker="%s")
app.conf.worker_prefetch_multiplier = 64
r = redis.Redis.from_url("%s")

@app.task(ignore_result=True)
def noop(n, sent=None):
    if sent is not None:
        r.rpush("lat", time.time() - sent)
    pipe = r.pipeline()
    pipe.incr("done")
    pipe.set("last", time.time())
    pipe.setnx("first", time.time())
    pipe.execute()
''' % (BROKER, BROKER)


def main():
    work = tempfile.mkdtemp(prefix="celery-bench-")
    with open(os.path.join(work, "bench_tasks.py"), "w") as f:
        f.write(TASKS)
    sys.path.insert(0, work)
    import bench_tasks  # noqa: E402

    r = redis.Redis.from_url(BROKER)
    r.flushdb()

    t = time.perf_counter()
    for i in range(N):
        bench_tasks.noop.delay(i)
    enqueue_s = time.perf_counter() - t

    worker = subprocess.Popen(
        ["celery", "-A", "bench_tasks", "worker", "--pool", POOL, "-c", str(CONCURRENCY),
         "--loglevel", "warning", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600
        while int(r.get("done") or 0) < N:
            if time.time() > deadline or worker.poll() is not None:
                sys.exit("the Celery worker did not finish")
            time.sleep(0.02)
        drain_s = float(r.get("last")) - float(r.get("first"))

        r.delete("lat", "done", "first", "last")
        total = RATE * SECS
        t = time.perf_counter()
        for k in range(total):
            due = k / RATE
            wait = due - (time.perf_counter() - t)
            if wait > 0:
                time.sleep(wait)
            bench_tasks.noop.delay(k, time.time())
        offered = total / (time.perf_counter() - t)
        while int(r.get("done") or 0) < total:
            if time.time() > deadline:
                sys.exit("the Celery worker did not finish")
            time.sleep(0.02)
        lat = sorted(float(x) * 1000 for x in r.lrange("lat", 0, -1))
        pct = lambda p: lat[min(int(len(lat) * p), len(lat) - 1)]
        print(json.dumps({
            "peer": f"celery {__import__('celery').__version__} ({POOL} x{CONCURRENCY}) on redis",
            "jobs": N,
            "enqueue_per_s": round(N / enqueue_s),
            "drain_jobs_per_s": round(N / drain_s),
            "steady_offered_per_s": round(offered),
            "latency_p50_ms": round(pct(0.50), 1),
            "latency_p99_ms": round(pct(0.99), 1),
        }))
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        r.flushdb()


if __name__ == "__main__":
    main()
