//! Measures model load time and local embedding throughput.
//!
//! cargo run --release --example throughput -- <model-dir> [chunks] [batch]
//! (model dir also from ZENTORIA_TEST_MODEL_DIR)

use std::path::PathBuf;
use std::time::Instant;

use zentoria_embed::{Embedder, LocalBert, LocalOptions};

const WORDS: &[&str] = &[
    "the",
    "index",
    "stores",
    "vectors",
    "for",
    "every",
    "chunk",
    "of",
    "text",
    "and",
    "answers",
    "queries",
    "by",
    "meaning",
    "rather",
    "than",
    "keywords",
    "while",
    "documents",
    "change",
    "search",
    "quality",
    "depends",
    "on",
    "embedding",
    "model",
    "latency",
    "budget",
    "tokens",
    "control",
    "plane",
    "retrieval",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args
        .get(1)
        .cloned()
        .or_else(|| std::env::var("ZENTORIA_TEST_MODEL_DIR").ok())
        .map(PathBuf::from)
        .ok_or("usage: throughput <model-dir> [chunks] [batch]")?;
    let chunks: usize = args.get(2).map_or(Ok(256), |s| s.parse())?;
    let batch: usize = args.get(3).map_or(Ok(32), |s| s.parse())?;

    let t0 = Instant::now();
    let model = LocalBert::load_with(
        &dir,
        LocalOptions {
            batch_size: Some(batch),
            ..LocalOptions::default()
        },
    )?;
    let load = t0.elapsed();
    println!("load: {load:.2?} ({})", model.id());

    // pseudo-random ~100-word-piece chunks
    let mut seed = 0x9e3779b97f4a7c15u64;
    let texts: Vec<String> = (0..chunks)
        .map(|_| {
            (0..96)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    WORDS[(seed % WORDS.len() as u64) as usize]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let counts = model.token_counts(&texts)?;
    let mean = counts.iter().sum::<usize>() as f64 / counts.len() as f64;
    println!("chunks: {chunks}, mean word pieces {mean:.1}, batch {batch}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()?;
    let embedder = Embedder::Local(model.clone());
    rt.block_on(embedder.embed(&texts[..batch.min(chunks)]))?; // warm-up
    for round in 1..=3 {
        let t = Instant::now();
        let out = rt.block_on(embedder.embed(&texts))?;
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(out.len(), chunks);
        println!(
            "round {round}: {:.1} chunks/s ({:.0} word pieces/s, {secs:.2}s)",
            chunks as f64 / secs,
            chunks as f64 * mean / secs
        );
    }
    let t = Instant::now();
    rt.block_on(embedder.embed(&["How do I reset my password?".to_owned()]))?;
    println!("single short query latency: {:.2?}", t.elapsed());
    Ok(())
}
