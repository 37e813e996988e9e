#!/usr/bin/env python3
"""Cold start and idle memory of `zentoria serve`.

Times from process spawn to the first 200 from GET /health, on a fresh data dir (first start:
master key generated, migrations applied) and on an existing one (a restart), then reads the
resident set size after the server has sat idle.

    python3 scripts/bench_startup.py [path/to/zentoria] [runs]
"""
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/zentoria/target/release/zentoria")
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 10


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(data_dir):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENTORIA_")}
    env["ZENTORIA_LOG_LEVEL"] = "warn"
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/health"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return proc, (time.perf_counter() - t0) * 1000
        except OSError:
            if proc.poll() is not None:
                sys.exit("zentoria serve exited early")
            time.sleep(0.001)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stop(proc):
    proc.terminate()
    proc.wait(timeout=10)


def main():
    first, restart, idle = [], [], []
    for _ in range(RUNS):
        d = tempfile.mkdtemp(prefix="zentoria-bench-")
        try:
            proc, ms = start(d)
            first.append(ms)
            stop(proc)
            proc, ms = start(d)
            restart.append(ms)
            time.sleep(2)
            idle.append(rss_mb(proc.pid))
            stop(proc)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    print(f"runs: {RUNS}; binary: {BIN} ({os.path.getsize(BIN) / 1e6:.1f} MB)")
    for name, xs in [("first start to ready (ms)", first), ("restart to ready (ms)", restart),
                     ("idle RSS (MB)", idle)]:
        print(f"{name}: median {statistics.median(xs):.1f}, min {min(xs):.1f}, max {max(xs):.1f}")


if __name__ == "__main__":
    main()
