#!/usr/bin/env python3
"""Medians over the rounds of scripts/bench-gateway.sh's fixed-rate runs.

    RATE_ROUNDS=5 ... scripts/bench-gateway.sh | tee out.csv
    python3 scripts/bench-gateway-summary.py < out.csv

For each rate, answer kind and path: the median p50/p99/p99.9 over the rounds, and the p99 each
path adds over the direct path, as the median of the per-round differences (each round's direct
run is the one measured next to it) with the smallest and largest difference seen. Rows of the
closed-loop section and comment lines are skipped.
"""

import csv
import statistics
import sys
from collections import defaultdict


def main() -> None:
    rows = []
    header = None
    for line in sys.stdin:
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("round,"):  # a section's header: the fixed-rate one or not
            header = line.strip().split(",") if line.startswith("round,rate,") else None
            continue
        if header is None:
            continue
        rows.append(dict(zip(header, next(csv.reader([line])))))
    if not rows:
        sys.exit("no fixed-rate rows (round,rate,... header) on stdin")

    runs = defaultdict(dict)  # (rate, stream, path) -> round -> row
    for r in rows:
        runs[(int(r["rate"]), r["stream"], r["path"])][r["round"]] = r

    def med(key, field):
        return statistics.median(float(r[field]) for r in runs[key].values())

    print("rate,stream,path,rounds,p50_ms,p99_ms,p999_ms,added_p99_ms,added_p99_min_ms,added_p99_max_ms,own_p99_ms")
    for key in sorted(runs, key=lambda k: (k[0], k[1], k[2] != "direct", k[2])):
        rate, stream, path = key
        direct = runs.get((rate, stream, "direct"), {})
        added = [float(r["p99_ms"]) - float(direct[n]["p99_ms"])
                 for n, r in runs[key].items() if n in direct and path != "direct"]
        own = [float(r["own_p99_ms"]) for r in runs[key].values() if r.get("own_p99_ms", "-") != "-"]
        print("%d,%s,%s,%d,%.3f,%.3f,%.3f,%s,%s,%s,%s" % (
            rate, stream, path, len(runs[key]), med(key, "p50_ms"), med(key, "p99_ms"), med(key, "p999_ms"),
            "%+.3f" % statistics.median(added) if added else "-",
            "%+.3f" % min(added) if added else "-",
            "%+.3f" % max(added) if added else "-",
            "%.3f" % statistics.median(own) if own else "-"))


if __name__ == "__main__":
    main()
