//! Benchmark: `cargo run --release --example bench [-- SIZES]`
//!
//! SIZES is a comma-separated list (default `10000,100000`). Environment:
//! `ZV_M`, `ZV_EFC`, `ZV_EF` override connectivity / expansion_add /
//! expansion_search; `ZV_QUERIES` (default 1000); `ZV_DATA=clustered` uses
//! clustered data (closer to real embeddings) instead of uniform random unit
//! vectors; `ZV_SWEEP=1` also reports recall/latency for several `ef` values.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use zentoria_vectors::{IndexParams, VectorIndex};

const DIM: usize = 384;
const K: usize = 10;
/// Noise norm around a centroid for clustered data (cosine to centroid ≈ 0.7).
const NOISE: f32 = 1.0;

struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.unit(), self.unit());
        ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
    }
    fn gauss_vec(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.gauss()).collect()
    }
}

fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// Uniform random unit vectors, or (clustered) centroid + noise like real embeddings.
fn make_vectors(rng: &mut Rng, n: usize, clustered: bool, centroids: &[Vec<f32>]) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            let g = rng.gauss_vec(DIM);
            if clustered {
                let c = &centroids[(rng.next_u64() % centroids.len() as u64) as usize];
                normalize(
                    c.iter()
                        .zip(&g)
                        .map(|(c, g)| c + NOISE * g / (DIM as f32).sqrt())
                        .collect(),
                )
            } else {
                normalize(g)
            }
        })
        .collect()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum()
}

/// Brute-force top-k ids (parallel over queries on all cores).
fn ground_truth(
    data: &[Vec<f32>],
    queries: &[Vec<f32>],
    allow: &(dyn Fn(u64) -> bool + Sync),
) -> Vec<Vec<u64>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = queries.len().div_ceil(threads);
    std::thread::scope(|s| {
        let hs: Vec<_> = queries
            .chunks(chunk)
            .map(|qs| {
                s.spawn(move || {
                    qs.iter()
                        .map(|q| {
                            let mut scored: Vec<(f32, u64)> = data
                                .iter()
                                .enumerate()
                                .filter(|(i, _)| allow(*i as u64))
                                .map(|(i, v)| (dot(q, v), i as u64))
                                .collect();
                            let k = K.min(scored.len());
                            if k > 0 {
                                scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
                            }
                            scored.truncate(k);
                            scored.into_iter().map(|x| x.1).collect()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

type SearchFn<'a> = &'a dyn Fn(&VectorIndex, &[f32]) -> Vec<(u64, f32)>;

struct Run {
    p50: f64,
    p99: f64,
    recall: f64,
}

fn run_queries(
    index: &VectorIndex,
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    search: SearchFn<'_>,
) -> Run {
    let mut lat = Vec::with_capacity(queries.len());
    let mut hits = 0usize;
    let mut total = 0usize;
    for (q, t) in queries.iter().zip(truth) {
        let start = Instant::now();
        let res = search(index, q);
        lat.push(start.elapsed());
        let got: HashSet<u64> = res.iter().map(|r| r.0).collect();
        hits += t.iter().filter(|id| got.contains(id)).count();
        total += t.len();
    }
    lat.sort();
    Run {
        p50: pct(&lat, 0.50),
        p99: pct(&lat, 0.99),
        recall: if total == 0 {
            1.0
        } else {
            hits as f64 / total as f64
        },
    }
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let defaults = IndexParams::default();
    let params = IndexParams {
        connectivity: env_usize("ZV_M").unwrap_or(defaults.connectivity),
        expansion_add: env_usize("ZV_EFC").unwrap_or(defaults.expansion_add),
        expansion_search: env_usize("ZV_EF").unwrap_or(defaults.expansion_search),
    };
    let nq = env_usize("ZV_QUERIES").unwrap_or(1000);
    let clustered = std::env::var("ZV_DATA").is_ok_and(|v| v == "clustered");
    let sweep = std::env::var("ZV_SWEEP").is_ok_and(|v| v == "1");
    println!(
        "dim={DIM} k={K} queries={nq} data={} params={params:?} cores={}",
        if clustered {
            "clustered"
        } else {
            "uniform-random"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    for &n in &sizes {
        let mut rng = Rng(42 ^ n as u64);
        let centroids: Vec<Vec<f32>> = (0..(n / 100).max(10))
            .map(|_| normalize(rng.gauss_vec(DIM)))
            .collect();
        let data = make_vectors(&mut rng, n, clustered, &centroids);
        let queries = make_vectors(&mut rng, nq, clustered, &centroids);
        let items: Vec<(u64, Vec<f32>)> = data
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, v)| (i as u64, v))
            .collect();

        let rss0 = rss_kib();
        let mut index = VectorIndex::create_with(DIM, params).expect("create");
        let t = Instant::now();
        index.upsert_batch(&items).expect("build");
        let build = t.elapsed();
        let rss1 = rss_kib();
        drop(items);
        println!("\n== n={n} ==");
        println!(
            "build (upsert_batch): {:.2} s ({:.0} vectors/s); RSS delta {:.1} MiB; engine memory_usage {:.1} MiB; raw vectors {:.1} MiB",
            build.as_secs_f64(),
            n as f64 / build.as_secs_f64(),
            (rss1.saturating_sub(rss0)) as f64 / 1024.0,
            index.memory_usage() as f64 / 1048576.0,
            (n * DIM * 4) as f64 / 1048576.0
        );

        let t = Instant::now();
        let truth = ground_truth(&data, &queries, &|_| true);
        let gt_time = t.elapsed();
        let plain = |ix: &VectorIndex, q: &[f32]| ix.search(q, K, None).expect("search");
        let r = run_queries(&index, &queries, &truth, &plain);
        println!(
            "search k=10 (ef={}): p50 {:.3} ms, p99 {:.3} ms, recall@10 {:.4}   [brute-force ground truth took {:.1} s for {nq} queries on all cores]",
            params.expansion_search,
            r.p50,
            r.p99,
            r.recall,
            gt_time.as_secs_f64()
        );
        if sweep {
            for ef in [32usize, 64, 128, 256, 512, 1024] {
                index.set_expansion_search(ef).expect("ef");
                let r = run_queries(&index, &queries, &truth, &plain);
                println!(
                    "  sweep ef={ef:5}: p50 {:.3} ms, p99 {:.3} ms, recall@10 {:.4}",
                    r.p50, r.p99, r.recall
                );
            }
            index
                .set_expansion_search(params.expansion_search)
                .expect("ef");
        }

        for (label, modulo) in [("10%", 10u64), ("1%", 100)] {
            let allow = move |id: u64| id.is_multiple_of(modulo);
            let t = ground_truth(&data, &queries, &allow);
            let f =
                move |ix: &VectorIndex, q: &[f32]| ix.search(q, K, Some(&allow)).expect("search");
            let r = run_queries(&index, &queries, &t, &f);
            println!(
                "filtered search ({label} of ids allowed): p50 {:.3} ms, p99 {:.3} ms, recall@10 {:.4}",
                r.p50, r.p99, r.recall
            );
        }
        let among: Vec<u64> = (0..n as u64).step_by((n / 500).max(1)).collect();
        let set: HashSet<u64> = among.iter().copied().collect();
        let t = ground_truth(&data, &queries, &|id| set.contains(&id));
        let f = |ix: &VectorIndex, q: &[f32]| ix.search_among(q, K, &among).expect("search_among");
        let r = run_queries(&index, &queries, &t, &f);
        println!(
            "search_among ({} ids, exact): p50 {:.3} ms, p99 {:.3} ms, recall@10 {:.4}",
            among.len(),
            r.p50,
            r.p99,
            r.recall
        );

        let dir = std::env::temp_dir().join(format!("zv-bench-{}-{n}", std::process::id()));
        let t = Instant::now();
        index.save_with_meta(&dir, "bench").expect("save");
        let save = t.elapsed();
        let size: u64 = std::fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        let t = Instant::now();
        let loaded = VectorIndex::open(&dir).expect("open").expect("saved");
        let load = t.elapsed();
        assert_eq!(loaded.len(), n);
        let r2 = run_queries(
            &loaded,
            &queries[..100.min(nq)],
            &truth[..100.min(nq)],
            &plain,
        );
        println!(
            "save {:.3} s, load {:.3} s, file {:.1} MiB; recall after reload (100 q) {:.4}",
            save.as_secs_f64(),
            load.as_secs_f64(),
            size as f64 / 1048576.0,
            r2.recall
        );
        drop(loaded);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
