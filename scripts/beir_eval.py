#!/usr/bin/env python3
"""Retrieval quality on a BEIR data set (default: SciFact), end to end through Zentoria.

Starts `zentoria serve` on a fresh data dir, ingests every corpus document as a text file
(title, blank line, abstract) with `zentoria ingest --url`, then asks every test query
through `POST /api/v1/search` and scores the ranking with nDCG@10 and recall@100, the BEIR
metrics (binary relevance, log2 discount, as pytrec_eval computes them). Nothing is tuned on
the queries.

    cargo build --release -p zentoria
    python3 scripts/beir_eval.py [--data ../shared/bench-data/beir/scifact]
        [--modes keyword,semantic,hybrid] [--model DIR]

Semantic and hybrid modes run the local embedder on the model in --model (default
$ZENTORIA_TEST_MODEL_DIR, else ~/.cache/zentoria/models/all-MiniLM-L6-v2, where
scripts/test.sh puts all-MiniLM-L6-v2). The corpus is ingested once; every mode asked is then
scored on the same index.

Only the standard library is needed.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary(args):
    if args.bin:
        return args.bin
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "zentoria")


def run(cmd, env, stdin=None):
    p = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True)
    if p.returncode not in (0, 4):
        sys.exit(f"{' '.join(cmd[:3])} failed ({p.returncode}): {p.stderr}\n{p.stdout}")
    return p.stdout


def serve(exe, env):
    proc = subprocess.Popen(
        [exe, "serve", "--listen", "127.0.0.1:0"],
        env={**env, "ZENTORIA_LOG_FORMAT": "json", "ZENTORIA_LOG_LEVEL": "info"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    addr = {}
    ready = threading.Event()

    def read():
        for line in proc.stderr:
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("message") == "zentoria is listening":
                addr["url"] = "http://" + v["addr"]
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(30):
        proc.kill()
        sys.exit("zentoria serve did not start")
    return proc, addr["url"]


def post(url, key, body):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key},
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def ndcg_at(ranked, rels, k):
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(rels.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "bench-data", "beir", "scifact"))
    ap.add_argument("--modes", default="keyword,semantic,hybrid", help="comma-separated: keyword, semantic, hybrid")
    ap.add_argument("--model", default=os.environ.get("ZENTORIA_TEST_MODEL_DIR") or os.path.expanduser("~/.cache/zentoria/models/all-MiniLM-L6-v2"))
    ap.add_argument("--bin", help="the zentoria binary (default: the release build)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    args = ap.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if any(m not in ("keyword", "semantic", "hybrid") for m in modes):
        sys.exit("--modes: keyword, semantic or hybrid")
    exe = binary(args)
    if not os.path.exists(exe):
        sys.exit(f"{exe} is missing: cargo build --release -p zentoria")

    corpus = [json.loads(l) for l in open(os.path.join(args.data, "corpus.jsonl"))]
    queries = {q["_id"]: q["text"] for q in map(json.loads, open(os.path.join(args.data, "queries.jsonl")))}
    qrels = {}
    with open(os.path.join(args.data, "qrels", "test.tsv")) as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(qid, {})[did] = int(score)

    work = tempfile.mkdtemp(prefix="zentoria-beir-")
    docs = os.path.join(work, "docs")
    os.makedirs(docs)
    for d in corpus:
        with open(os.path.join(docs, f"{d['_id']}.txt"), "w") as f:
            f.write(f"{d.get('title', '')}\n\n{d['text']}\n")
    env = {
        **os.environ,
        "ZENTORIA_DATA_DIR": os.path.join(work, "data"),
        "ZENTORIA_LOG_LEVEL": "warn",
        "ZENTORIA_RATE_LIMIT_PER_MINUTE": "0",
    }
    if modes != ["keyword"]:
        if not os.path.exists(os.path.join(args.model, "model.safetensors")):
            sys.exit(f"no model in {args.model}: run scripts/test.sh once, or pass --model")
        env["ZENTORIA_EMBEDDER"] = "local"
        env["ZENTORIA_EMBEDDER_MODEL"] = args.model
    env.pop("ZENTORIA_DATABASE_URL", None)
    env.pop("ZENTORIA_CONFIG", None)
    run([exe, "users", "create", "--username", "bench", "--admin", "--password-stdin"], env, "bench-password-1\n")
    key = run([exe, "keys", "create", "--user", "bench", "--name", "beir", "--scopes", "files:read,files:write"], env).strip()
    proc, url = serve(exe, env)
    try:
        t0 = time.time()
        out = run([exe, "ingest", docs, "--url", url, "--api-key", key], env)
        ingest_s = time.time() - t0
        print(out.strip().splitlines()[0], file=sys.stderr)
        results = []
        for mode in modes:
            ndcgs, recalls, latencies = [], [], []
            for qid, rels in sorted(qrels.items()):
                t = time.perf_counter()
                res = post(f"{url}/api/v1/search", key, {"query": queries[qid], "mode": mode, "top_k": 100})
                latencies.append((time.perf_counter() - t) * 1000)
                ranked = []
                for h in res["hits"]:
                    doc = h["file_name"].rsplit(".", 1)[0]
                    if doc not in ranked:
                        ranked.append(doc)
                ndcgs.append(ndcg_at(ranked, rels, 10))
                recalls.append(len(set(ranked[:100]) & set(rels)) / len(rels))
            latencies.sort()
            results.append({
                "dataset": os.path.basename(os.path.normpath(args.data)),
                "mode": mode,
                "documents": len(corpus),
                "queries": len(ndcgs),
                "ndcg@10": round(sum(ndcgs) / len(ndcgs), 4),
                "recall@100": round(sum(recalls) / len(recalls), 4),
                "ingest_seconds": round(ingest_s, 1),
                "query_ms_p50": round(latencies[len(latencies) // 2], 2),
                "query_ms_p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
            })
        print(json.dumps(results, indent=2))
    finally:
        proc.terminate()
        proc.wait()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
