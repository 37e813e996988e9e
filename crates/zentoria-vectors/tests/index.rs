use std::collections::HashSet;
use std::path::PathBuf;

use zentoria_vectors::{VectorError, VectorIndex};

/// SplitMix64: tiny seeded generator so tests need no extra dependency.
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
    fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| self.gauss()).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }
}

fn dataset(seed: u64, n: usize, dim: usize) -> Vec<(u64, Vec<f32>)> {
    let mut rng = Rng(seed);
    (0..n as u64).map(|i| (i, rng.unit_vector(dim))).collect()
}

/// Random unit vectors scattered around random centroids: like real text
/// embeddings, they have structure that HNSW exploits (uniform random
/// high-dimensional vectors are its worst case).
fn clustered(seed: u64, n: usize, dim: usize, clusters: usize) -> (Vec<(u64, Vec<f32>)>, Rng) {
    let mut rng = Rng(seed);
    let centroids: Vec<Vec<f32>> = (0..clusters).map(|_| rng.unit_vector(dim)).collect();
    let data = (0..n as u64)
        .map(|i| (i, around(&mut rng, &centroids)))
        .collect();
    (data, rng)
}

fn around(rng: &mut Rng, centroids: &[Vec<f32>]) -> Vec<f32> {
    let c = &centroids[(rng.next_u64() % centroids.len() as u64) as usize];
    let dim = c.len();
    let noise = rng.unit_vector(dim);
    let mut v: Vec<f32> = c.iter().zip(&noise).map(|(c, g)| c + 0.6 * g).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn recall(index: &VectorIndex, queries: &[Vec<f32>]) -> f64 {
    let mut hits = 0;
    for q in queries {
        let approx: HashSet<u64> = ids(&index.search(q, 10, None).unwrap())
            .into_iter()
            .collect();
        let exact = index.search_exact(q, 10, None).unwrap();
        assert_eq!(exact.len(), 10);
        hits += exact.iter().filter(|(id, _)| approx.contains(id)).count();
    }
    hits as f64 / (queries.len() * 10) as f64
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "zentoria-vectors-test-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn ids(res: &[(u64, f32)]) -> Vec<u64> {
    res.iter().map(|r| r.0).collect()
}

/// Uniform random unit vectors and queries: the worst case for HNSW (every
/// pairwise cosine is ≈ 0 ± 0.05, so the top-10 is a near-tie). Needs a wide
/// search beam (`ef`) to reach 0.95.
#[test]
fn recall_at_10_on_10k_uniform_random_384d() {
    let dim = 384;
    let data = dataset(42, 10_000, dim);
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&data).unwrap();
    assert_eq!(index.len(), 10_000);
    index.set_expansion_search(1024).unwrap();
    let mut rng = Rng(7);
    let queries: Vec<Vec<f32>> = (0..100).map(|_| rng.unit_vector(dim)).collect();
    let r = recall(&index, &queries);
    eprintln!("uniform random: recall@10 = {r:.4} (ef=1024)");
    assert!(r >= 0.95, "recall@10 {r} < 0.95");
}

/// Clustered random unit vectors (embedding-like) with the default parameters.
#[test]
fn recall_at_10_on_10k_clustered_random_384d_default_params() {
    let dim = 384;
    let (data, mut rng) = clustered(43, 10_000, dim, 100);
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&data).unwrap();
    let centroids: Vec<Vec<f32>> = (0..100).map(|i| data[i * 100].1.clone()).collect();
    let queries: Vec<Vec<f32>> = (0..100).map(|_| around(&mut rng, &centroids)).collect();
    let r = recall(&index, &queries);
    eprintln!("clustered: recall@10 = {r:.4} (default ef)");
    assert!(r >= 0.95, "recall@10 {r} < 0.95");
}

#[test]
fn search_scores_are_cosine_and_sorted() {
    let data = dataset(1, 500, 32);
    let mut index = VectorIndex::create(32).unwrap();
    index.upsert_batch(&data).unwrap();
    let (qid, q) = &data[17];
    let res = index.search(q, 5, None).unwrap();
    assert_eq!(res[0].0, *qid);
    assert!(
        (res[0].1 - 1.0).abs() < 1e-4,
        "self-similarity {}",
        res[0].1
    );
    assert!(res.windows(2).all(|w| w[0].1 >= w[1].1));
    // Non-normalised query gives the same ranking and cosine scores.
    let scaled: Vec<f32> = q.iter().map(|x| x * 3.0).collect();
    let res2 = index.search(&scaled, 5, None).unwrap();
    assert_eq!(ids(&res), ids(&res2));
}

#[test]
fn upsert_replaces_existing_id() {
    let dim = 16;
    let mut rng = Rng(3);
    let a = rng.unit_vector(dim);
    let b = rng.unit_vector(dim);
    let mut index = VectorIndex::create(dim).unwrap();
    for i in 0..100 {
        index.upsert(1000 + i, &rng.unit_vector(dim)).unwrap();
    }
    index.upsert(1, &a).unwrap();
    assert_eq!(index.search(&a, 1, None).unwrap()[0].0, 1);
    index.upsert(1, &b).unwrap();
    assert_eq!(index.len(), 101);
    let top = index.search(&b, 1, None).unwrap();
    assert_eq!(top[0].0, 1);
    assert!((top[0].1 - 1.0).abs() < 1e-4);
    let got = index.get(1).unwrap();
    assert!(got.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5));
    // Batch upsert of existing ids also replaces; the last duplicate wins.
    index
        .upsert_batch(&[(1, a.clone()), (2, a.clone()), (1, b.clone())])
        .unwrap();
    assert_eq!(index.len(), 102);
    assert_eq!(index.search(&b, 1, None).unwrap()[0].0, 1);
}

#[test]
fn remove_makes_id_unfindable() {
    let dim = 24;
    let data = dataset(5, 3_000, dim);
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&data).unwrap();
    for (id, v) in data.iter().take(300) {
        assert!(index.remove(*id).unwrap());
        assert!(!index.contains(*id));
        let res = index.search(v, 10, None).unwrap();
        assert!(!ids(&res).contains(id));
    }
    assert!(!index.remove(0).unwrap());
    assert_eq!(index.len(), 2_700);
    let res = index.search_among(&data[0].1, 5, &[0, 1, 2, 400]).unwrap();
    assert_eq!(ids(&res), vec![400]);
    // Freed slots are reused by new inserts.
    for (id, v) in data.iter().take(300) {
        index.upsert(id + 1_000_000, v).unwrap();
    }
    assert_eq!(index.len(), 3_000);
    assert_eq!(index.search(&data[5].1, 1, None).unwrap()[0].0, 1_000_005);
}

#[test]
fn filtered_search_only_allowed_and_full_k() {
    let dim = 64;
    let (data, mut rng) = clustered(9, 20_000, dim, 200);
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&data).unwrap();
    let probes: Vec<Vec<f32>> = (0..20).map(|i| data[i * 997].1.clone()).collect();
    // Selectivities 50 % and 10 % (graph search), 2.5 %, 1 %, 0.1 % and
    // exactly 7 ids (exact scan).
    for modulo in [2u64, 10, 40, 100, 1000, 20_000 / 7 + 1] {
        let allow = move |id: u64| id.is_multiple_of(modulo);
        let admitted = data.iter().filter(|(id, _)| allow(*id)).count();
        let mut overlap = 0;
        for p in &probes {
            let q = around(&mut rng, std::slice::from_ref(p));
            let res = index.search(&q, 10, Some(&allow)).unwrap();
            assert!(res.iter().all(|(id, _)| allow(*id)), "modulo {modulo}");
            assert_eq!(res.len(), admitted.min(10), "modulo {modulo}");
            let exact = index.search_exact(&q, 10, Some(&allow)).unwrap();
            overlap += res
                .iter()
                .filter(|r| exact.iter().any(|e| e.0 == r.0))
                .count();
        }
        let r = overlap as f64 / (probes.len() * admitted.min(10)) as f64;
        assert!(r >= 0.9, "modulo {modulo}: filtered recall {r}");
    }
    // A filter admitting nothing.
    let none = |_: u64| false;
    assert!(
        index
            .search(&data[0].1, 10, Some(&none))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn search_among_is_exact() {
    let dim = 48;
    let data = dataset(13, 2_000, dim);
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&data).unwrap();
    let q = Rng(99).unit_vector(dim);
    let subset: Vec<u64> = (0..2_000).step_by(37).chain([5, 5, 999_999]).collect();
    let res = index.search_among(&q, 10, &subset).unwrap();
    let allow = |id: u64| id.is_multiple_of(37) || id == 5;
    let exact = index.search_exact(&q, 10, Some(&allow)).unwrap();
    assert_eq!(res, exact);
    assert!(index.search_among(&q, 10, &[]).unwrap().is_empty());
    assert!(index.search_among(&q, 0, &subset).unwrap().is_empty());
}

#[test]
fn save_open_round_trip_is_identical() {
    let dim = 96;
    let data = dataset(21, 5_000, dim);
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&data).unwrap();
    for id in 0..50 {
        index.remove(id).unwrap();
    }
    let dir = tempdir("roundtrip");
    assert!(VectorIndex::open(&dir).unwrap().is_none());
    index
        .save_with_meta(&dir, "embedder=minilm;seq=1234")
        .unwrap();
    let loaded = VectorIndex::open(&dir).unwrap().unwrap();
    assert_eq!(loaded.dim(), dim);
    assert_eq!(loaded.len(), index.len());
    assert_eq!(loaded.meta(), "embedder=minilm;seq=1234");
    assert_eq!(index.meta(), "embedder=minilm;seq=1234");
    assert_eq!(loaded.params(), index.params());
    let mut rng = Rng(5);
    let odd = |id: u64| id % 2 == 1;
    for _ in 0..50 {
        let q = rng.unit_vector(dim);
        assert_eq!(
            index.search(&q, 10, None).unwrap(),
            loaded.search(&q, 10, None).unwrap()
        );
        assert_eq!(
            index.search(&q, 10, Some(&odd)).unwrap(),
            loaded.search(&q, 10, Some(&odd)).unwrap()
        );
    }
    for id in 0..100 {
        assert_eq!(index.contains(id), loaded.contains(id));
    }
    // The loaded index stays fully mutable, reusing tombstoned slots.
    let mut loaded = loaded;
    loaded.upsert_batch(&data[..100]).unwrap();
    assert_eq!(loaded.len(), 5_000);
    loaded.save(&dir).unwrap();
    let again = VectorIndex::open(&dir).unwrap().unwrap();
    assert_eq!(again.len(), 5_000);
    assert_eq!(again.meta(), "embedder=minilm;seq=1234");
    // Saving again replaces the file and leaves no temp files behind.
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_index_round_trip_and_search() {
    let mut index = VectorIndex::create(8).unwrap();
    assert!(index.is_empty());
    assert!(index.search(&[0.1; 8], 10, None).unwrap().is_empty());
    let allow = |_: u64| true;
    assert!(
        index
            .search(&[0.1; 8], 10, Some(&allow))
            .unwrap()
            .is_empty()
    );
    assert!(
        index
            .search_among(&[0.1; 8], 10, &[1, 2])
            .unwrap()
            .is_empty()
    );
    let dir = tempdir("empty");
    index.save_with_meta(&dir, "").unwrap();
    let loaded = VectorIndex::open(&dir).unwrap().unwrap();
    assert_eq!(loaded.len(), 0);
    assert!(loaded.search(&[0.1; 8], 3, None).unwrap().is_empty());
    index.upsert(1, &[1.0; 8]).unwrap();
    assert_eq!(index.search(&[1.0; 8], 10, None).unwrap().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupted_or_truncated_file_is_an_error() {
    let dim = 32;
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&dataset(2, 1_000, dim)).unwrap();
    let dir = tempdir("corrupt");
    index.save_with_meta(&dir, "meta").unwrap();
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let good = std::fs::read(&file).unwrap();

    let mut cases: Vec<Vec<u8>> = vec![
        Vec::new(),
        good[..10].to_vec(),
        good[..good.len() / 2].to_vec(),
        good[..good.len() - 1].to_vec(),
        [good.as_slice(), b"x"].concat(),
    ];
    let mut rng = Rng(77);
    for _ in 0..40 {
        let mut bad = good.clone();
        let at = (rng.next_u64() % bad.len() as u64) as usize;
        bad[at] ^= 1 << (rng.next_u64() % 8);
        cases.push(bad);
    }
    for (i, bad) in cases.into_iter().enumerate() {
        std::fs::write(&file, &bad).unwrap();
        match VectorIndex::open(&dir) {
            Err(VectorError::Corrupt(_)) => {}
            other => panic!("case {i}: expected Corrupt, got {other:?}"),
        }
    }
    std::fs::write(&file, &good).unwrap();
    assert_eq!(VectorIndex::open(&dir).unwrap().unwrap().len(), 1_000);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn crash_leftovers_do_not_break_open() {
    let dim = 8;
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert(1, &[0.5; 8]).unwrap();
    let dir = tempdir("leftover");
    index.save(&dir).unwrap();
    // Simulate a save that died mid-write: a half-written temp file.
    std::fs::write(dir.join("vectors.zvi.tmp-1-0"), b"ZVECIDX\0garbage").unwrap();
    let loaded = VectorIndex::open(&dir).unwrap().unwrap();
    assert!(loaded.contains(1));
    index.save(&dir).unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_inputs_are_errors() {
    let mut index = VectorIndex::create(4).unwrap();
    assert_eq!(
        index.upsert(1, &[1.0, 2.0, 3.0]),
        Err(VectorError::Dimension {
            expected: 4,
            got: 3
        })
    );
    assert!(matches!(
        index.search(&[1.0; 5], 3, None),
        Err(VectorError::Dimension {
            expected: 4,
            got: 5
        })
    ));
    assert!(matches!(
        index.search_among(&[1.0; 3], 3, &[1]),
        Err(VectorError::Dimension { .. })
    ));
    assert!(matches!(
        index.upsert_batch(&[(1, vec![1.0; 4]), (2, vec![1.0; 2])]),
        Err(VectorError::Dimension { .. })
    ));
    assert!(index.is_empty(), "a rejected batch changes nothing");
    assert!(matches!(
        index.upsert(1, &[f32::NAN, 0.0, 0.0, 0.0]),
        Err(VectorError::Engine(_))
    ));
    assert!(matches!(
        index.upsert(u64::MAX, &[1.0; 4]),
        Err(VectorError::Engine(_))
    ));
    assert!(matches!(
        VectorIndex::create(0),
        Err(VectorError::Dimension { .. })
    ));
    // A zero vector is accepted and scores 0.
    index.upsert(9, &[0.0; 4]).unwrap();
    assert_eq!(
        index.search(&[1.0, 0.0, 0.0, 0.0], 1, None).unwrap(),
        vec![(9, 0.0)]
    );
    // Opening a directory holding a file that is not an index.
    let dir = tempdir("notindex");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("vectors.zvi"), vec![0u8; 4096]).unwrap();
    assert!(matches!(
        VectorIndex::open(&dir),
        Err(VectorError::Corrupt(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn concurrent_searches_share_the_index() {
    let dim = 32;
    let data = dataset(31, 5_000, dim);
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&data).unwrap();
    let index = &index;
    std::thread::scope(|s| {
        for t in 0..24u64 {
            s.spawn(move || {
                let mut rng = Rng(t);
                for _ in 0..50 {
                    let q = rng.unit_vector(dim);
                    assert_eq!(index.search(&q, 10, None).unwrap().len(), 10);
                }
            });
        }
    });
}

#[test]
fn panicking_filter_is_an_error_not_an_abort() {
    let dim = 16;
    let mut index = VectorIndex::create(dim).unwrap();
    index.upsert_batch(&dataset(4, 5_000, dim)).unwrap();
    let bad = |id: u64| {
        if id.is_multiple_of(3) {
            panic!("boom");
        }
        true
    };
    let res = index.search(&Rng(1).unit_vector(dim), 10, Some(&bad));
    assert!(matches!(res, Err(VectorError::Engine(_))));
}
