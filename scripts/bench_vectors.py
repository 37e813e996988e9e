#!/usr/bin/env python3
"""Zentoria's knowledge pipeline against ChromaDB, on the same chunks and the same vectors.

For each scale (default 10k and 100k chunks):

* chunks are sentences of the BEIR SciFact corpus (cycled, each with a unique marker), and
  each chunk's vector is a 384-d unit vector drawn around one of 1,000 cluster centres (the
  shape of real sentence embeddings; computing 100k real ones would take an hour here);
* Zentoria (`zentoria serve`, release build, SQLite, fresh data dir) ingests them as
  Markdown files of 100 one-chunk sections, uploaded over HTTP by 4 clients, with the
  `openai` embedder pointed at a fake `/v1/embeddings` server in this script that answers
  with the chunk's prepared vector; the clock stops when every file is `ready` (extracted,
  chunked, stored, vectors stored, BM25 and HNSW indexes updated);
* ChromaDB (`chroma run`, its own server process, persistent dir) gets the same texts and
  vectors with `collection.add` in batches of 1,000 (cosine space) over its HTTP client;
* once each server is idle again (background merges and saves done), 1,000 queries (vectors near random centres, texts from other sentences), one at a time:
  Zentoria `semantic` and `hybrid` with the query vector supplied (`"vector"`), ChromaDB
  `query(query_embeddings=…, n_results=10)`. Latency is measured by the client, round trip
  included; recall@10 against exact search (numpy) for both;
* RSS of each server process after ingestion and queries.

    cargo build --release -p zentoria
    python3 -m venv ~/.cache/zentoria/venv-bench
    ~/.cache/zentoria/venv-bench/bin/pip install chromadb numpy
    ~/.cache/zentoria/venv-bench/bin/python scripts/bench_vectors.py [--scales 10000,100000]
"""

import argparse
import concurrent.futures
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIM = 384
CENTRES = 1000
PER_FILE = 100
QUERIES = 1000
MARK = re.compile(r"\[(c|q)(\d+)\]")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mb(pid):
    """RSS of a process and its children (chroma's server may fork)."""
    total = rss_mb(pid)
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
        for child in out.split():
            total += tree_rss_mb(int(child))
    except OSError:
        pass
    return total


def cpu_seconds(pid):
    """User + system CPU time of a process and its threads."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid, timeout=120):
    """Waits until the server is idle (background merges, snapshot saves done), so queries are
    timed on their own, the same way for both engines."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        before = cpu_seconds(pid)
        time.sleep(1)
        if cpu_seconds(pid) - before < 0.05:
            return
    print(f"warning: process {pid} still busy after {timeout} s", file=sys.stderr)


def unit(v):
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def make_data(n, sentences, rng):
    centres = unit(rng.standard_normal((CENTRES, DIM)))
    assign = rng.integers(0, CENTRES, n)
    vectors = unit(centres[assign] + 0.35 * unit(rng.standard_normal((n, DIM))) )
    texts = [f"{sentences[i % len(sentences)]} [c{i}]" for i in range(n)]
    qassign = rng.integers(0, CENTRES, QUERIES)
    qvectors = unit(centres[qassign] + 0.35 * unit(rng.standard_normal((QUERIES, DIM))))
    qtexts = [f"{sentences[(7919 * i + 13) % len(sentences)]} [q{i}]" for i in range(QUERIES)]
    return texts, vectors, qtexts, qvectors


class FakeEmbeddings(http.server.BaseHTTPRequestHandler):
    """OpenAI `/v1/embeddings`, answering each input with the vector its marker names."""

    vectors_json = None
    qvectors_json = None
    fallback = json.dumps([1.0] + [0.0] * (DIM - 1))
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        # Vectors are serialised once, before the clock starts, so this Python fake costs the
        # pipeline as little as possible.
        data = []
        for i, text in enumerate(inputs):
            m = MARK.search(text)
            if m is None:
                vec = self.fallback
            else:
                table = self.vectors_json if m.group(1) == "c" else self.qvectors_json
                vec = table[int(m.group(2))]
            data.append('{"object":"embedding","index":%d,"embedding":%s}' % (i, vec))
        out = ('{"object":"list","data":[%s],"model":%s,"usage":{"prompt_tokens":0,"total_tokens":0}}'
               % (",".join(data), json.dumps(body["model"]))).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def request(method, url, key=None, body=None, headers=None):
    h = dict(headers or {})
    if key:
        h["authorization"] = f"Bearer {key}"
    data = None
    if body is not None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        else:
            data = json.dumps(body).encode()
            h["content-type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=h, method=method)
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read() or b"null")


def multipart(name, content):
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"content-type: text/markdown\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def run(cmd, env, stdin=None):
    p = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed: {p.stderr}")
    return p.stdout


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            time.sleep(0.1)
    sys.exit(f"{url} did not come up")


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def exact_top(vectors, q, k=10):
    scores = vectors @ q
    idx = np.argpartition(-scores, k)[:k]
    return set(idx[np.argsort(-scores[idx])].tolist())


def bench_zentoria(exe, n, texts, vectors, qtexts, qvectors, truth, fake_url, work):
    env = {**os.environ,
           "ZENTORIA_DATA_DIR": os.path.join(work, "zentoria"),
           "ZENTORIA_LOG_LEVEL": "warn",
           "ZENTORIA_RATE_LIMIT_PER_MINUTE": "0",
           "ZENTORIA_EMBEDDER": "openai",
           "ZENTORIA_EMBEDDER_URL": fake_url,
           "ZENTORIA_EMBEDDER_MODEL": "bench-384",
           "ZENTORIA_EMBEDDER_BATCH": "256",
           "ZENTORIA_INGEST_CONCURRENCY": os.environ.get("BENCH_INGEST_CONCURRENCY", "4"),
           "ZENTORIA_CHUNK_TOKENS": "512"}
    for k in ("ZENTORIA_DATABASE_URL", "ZENTORIA_CONFIG"):
        env.pop(k, None)
    run([exe, "users", "create", "--username", "bench", "--admin", "--password-stdin"], env, "bench-password-1\n")
    key = run([exe, "keys", "create", "--user", "bench", "--name", "bench", "--scopes", "files:read,files:write"], env).strip()
    port = free_port()
    proc = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health")
        files = []
        for f in range(0, n, PER_FILE):
            body = "".join(f"## Section {i}\n\n{texts[i]}\n\n" for i in range(f, min(n, f + PER_FILE)))
            files.append((f"doc-{f // PER_FILE:05}.md", body.encode()))
        t0 = time.perf_counter()

        def upload(item):
            payload, ctype = multipart(*item)
            return request("POST", f"{url}/api/v1/files", key, payload, {"content-type": ctype})["file"]["id"]

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(upload, files))
        pending = set(ids)
        while pending:
            page = request("GET", f"{url}/api/v1/files?status=ready&limit=500&offset=0", key)
            if page["total"] >= len(ids):
                break
            failed = request("GET", f"{url}/api/v1/files?status=failed&limit=1", key)
            if failed["total"]:
                sys.exit(f"zentoria failed a file: {failed['files'][0]}")
            time.sleep(0.2)
        ingest_s = time.perf_counter() - t0
        listed = request("GET", f"{url}/api/v1/files?limit=500", key)["files"]
        chunks = sum(f["chunk_count"] for f in listed)
        expect = len(listed) * PER_FILE
        # One chunk per section, give or take a sentence the chunker splits.
        assert expect <= chunks <= expect * 1.01, f"expected about {expect} chunks, got {chunks}"
        rss_ingest = rss_mb(proc.pid)
        settle(proc.pid)
        out = {"ingest_seconds": round(ingest_s, 2), "ingest_chunks_per_s": round(n / ingest_s),
               "rss_mb_after_ingest": round(rss_ingest, 1)}
        for mode in ("semantic", "hybrid"):
            lat, server, recall = [], [], []
            for i in range(QUERIES):
                body = {"query": qtexts[i], "mode": mode, "top_k": 10, "vector": qvectors[i].tolist()}
                t = time.perf_counter()
                res = request("POST", f"{url}/api/v1/search", key, body)
                lat.append((time.perf_counter() - t) * 1000)
                server.append(res["took_ms"])
                if mode == "semantic":
                    marks = (MARK.search(h["text"]) for h in res["hits"])
                    got = {int(m.group(2)) for m in marks if m}
                    recall.append(len(got & truth[i]) / 10)
            out[mode] = {"p50_ms": round(percentile(lat, 0.5), 2), "p99_ms": round(percentile(lat, 0.99), 2),
                         "server_p50_ms": round(percentile(server, 0.5), 2),
                         "server_p99_ms": round(percentile(server, 0.99), 2)}
            if recall:
                out[mode]["recall@10"] = round(sum(recall) / len(recall), 4)
        out["rss_mb_after_queries"] = round(rss_mb(proc.pid), 1)
        return out
    finally:
        proc.terminate()
        proc.wait()


def bench_chroma(n, texts, vectors, qvectors, truth, work):
    import chromadb

    port = free_port()
    chroma = shutil.which("chroma", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.Popen([chroma, "run", "--path", os.path.join(work, "chroma"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat")
        client = chromadb.HttpClient(host="127.0.0.1", port=port)
        col = client.create_collection("bench", metadata={"hnsw:space": "cosine"})
        t0 = time.perf_counter()
        for f in range(0, n, 1000):
            idx = range(f, min(n, f + 1000))
            col.add(ids=[f"c{i}" for i in idx], embeddings=vectors[f:f + len(idx)],
                    documents=[texts[i] for i in idx],
                    metadatas=[{"file": f"doc-{i // PER_FILE:05}.md"} for i in idx])
        ingest_s = time.perf_counter() - t0
        out = {"ingest_seconds": round(ingest_s, 2), "ingest_chunks_per_s": round(n / ingest_s),
               "rss_mb_after_ingest": round(tree_rss_mb(proc.pid), 1)}
        settle(proc.pid)
        lat, recall = [], []
        for i in range(QUERIES):
            t = time.perf_counter()
            res = col.query(query_embeddings=[qvectors[i]], n_results=10, include=["documents", "distances"])
            lat.append((time.perf_counter() - t) * 1000)
            got = {int(x[1:]) for x in res["ids"][0]}
            recall.append(len(got & truth[i]) / 10)
        out["semantic"] = {"p50_ms": round(percentile(lat, 0.5), 2), "p99_ms": round(percentile(lat, 0.99), 2),
                           "recall@10": round(sum(recall) / len(recall), 4)}
        out["rss_mb_after_queries"] = round(tree_rss_mb(proc.pid), 1)
        out["version"] = chromadb.__version__
        return out
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="10000,100000")
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "bench-data", "beir", "scifact"))
    ap.add_argument("--bin", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "zentoria"))
    ap.add_argument("--skip-chroma", action="store_true")
    args = ap.parse_args()
    sentences = []
    for line in open(os.path.join(args.data, "corpus.jsonl")):
        for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]):
            if 40 <= len(s) <= 400:
                sentences.append(s.strip())
    rng = np.random.default_rng(20261125)
    results = []
    for n in [int(s) for s in args.scales.split(",")]:
        texts, vectors, qtexts, qvectors = make_data(n, sentences, rng)
        truth = [exact_top(vectors, q) for q in qvectors]
        FakeEmbeddings.vectors_json = [json.dumps(v) for v in vectors.tolist()]
        FakeEmbeddings.qvectors_json = [json.dumps(v) for v in qvectors.tolist()]
        fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeEmbeddings)
        threading.Thread(target=fake.serve_forever, daemon=True).start()
        work = tempfile.mkdtemp(prefix="zentoria-vbench-")
        try:
            row = {"chunks": n,
                   "zentoria": bench_zentoria(args.bin, n, texts, vectors, qtexts, qvectors, truth,
                                              f"http://127.0.0.1:{fake.server_address[1]}", work)}
            if not args.skip_chroma:
                row["chroma"] = bench_chroma(n, texts, vectors, qvectors, truth, work)
            results.append(row)
            print(json.dumps(row, indent=2), flush=True)
        finally:
            fake.shutdown()
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
