//! The real all-MiniLM-L6-v2 against sentence-transformers' reference
//! vectors (tests/fixtures/minilm_reference.json, made by make_reference.py).

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;
use zentoria_embed::{EmbedError, Embedder, LocalBert, LocalOptions, Pooling, cosine_similarity};

#[derive(Deserialize)]
struct Reference {
    max_seq_length: usize,
    dimension: usize,
    items: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    text: String,
    token_count: usize,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/minilm_reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn model() -> &'static LocalBert {
    static MODEL: OnceLock<LocalBert> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = common::model_dir();
        LocalBert::load(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
    })
}

fn texts(r: &Reference) -> Vec<String> {
    r.items.iter().map(|i| i.text.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_sentence_transformers_reference() {
    let r = reference();
    let m = model();
    assert_eq!(m.dimension(), r.dimension);
    assert_eq!(m.max_seq_length(), r.max_seq_length);
    assert_eq!(m.pooling(), Pooling::Mean);

    let e = Embedder::Local(m.clone());
    assert_eq!(e.dimension(), 384);
    let got = e.embed(&texts(&r)).await.unwrap();
    assert_eq!(got.len(), r.items.len());
    let mut worst = 1.0f32;
    for (item, v) in r.items.iter().zip(&got) {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        let cos = cosine_similarity(v, &item.embedding);
        let label: String = item.text.chars().take(40).collect();
        let max_diff = v
            .iter()
            .zip(&item.embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "cosine {cos:.7}  max|diff| {max_diff:.1e}  tokens {:>3}  {label:?}",
            item.token_count
        );
        worst = worst.min(cos);
        assert!(cos >= 0.999, "cosine {cos} < 0.999 for {label:?}");
    }
    eprintln!("worst cosine vs sentence-transformers: {worst:.7}");
}

#[test]
fn truncation_matches_reference_token_counts() {
    let r = reference();
    let counts = model().token_counts(&texts(&r)).unwrap();
    let expected: Vec<usize> = r.items.iter().map(|i| i.token_count).collect();
    assert_eq!(counts, expected);
    assert!(
        expected.contains(&256),
        "the fixture must hold an input longer than 256 word pieces"
    );
    // and the untruncated long text is indeed longer than that
    let long = r
        .items
        .iter()
        .map(|i| &i.text)
        .max_by_key(|t| t.len())
        .unwrap();
    assert!(long.split_whitespace().count() > 256);
}

#[test]
fn paraphrase_scores_higher_than_unrelated() {
    let r = reference();
    let v = model().embed_blocking(&texts(&r)).unwrap();
    let para = cosine_similarity(&v[0], &v[1]);
    let unrelated = cosine_similarity(&v[0], &v[2]);
    eprintln!("paraphrase {para:.4} vs unrelated {unrelated:.4}");
    assert!(
        para > unrelated + 0.2,
        "paraphrase {para} unrelated {unrelated}"
    );
    assert!(para > 0.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_preserves_order_and_values() {
    let r = reference();
    let all = texts(&r);
    // batch size 3 splits the inputs unevenly and mixes lengths
    let small = model().clone().with_batch_size(3);
    let batched = small.embed(&all).await.unwrap();
    let whole = model().embed(&all).await.unwrap();
    for (i, text) in all.iter().enumerate() {
        let single = model().embed(std::slice::from_ref(text)).await.unwrap();
        assert!(
            cosine_similarity(&single[0], &whole[i]) > 0.99999,
            "item {i}"
        );
        assert!(
            cosine_similarity(&batched[i], &whole[i]) > 0.99999,
            "item {i}"
        );
    }
    assert!(model().embed(&[]).await.unwrap().is_empty());
}

#[test]
fn id_and_options() {
    let dir = common::model_dir();
    let m = model();
    let expected = format!("local:{}", dir.file_name().unwrap().to_string_lossy());
    assert_eq!(m.id(), expected);
    let named = LocalBert::load_with(
        &dir,
        LocalOptions {
            name: Some("all-MiniLM-L6-v2".into()),
            max_seq_length: Some(16),
            batch_size: Some(4),
            pooling: None,
        },
    )
    .unwrap();
    assert_eq!(
        Embedder::Local(named.clone()).id(),
        "local:all-MiniLM-L6-v2"
    );
    assert_eq!(named.batch_size(), 4);
    let long = "word ".repeat(100);
    assert_eq!(named.token_counts(&[long]).unwrap(), vec![16]);
}

// ------------------------------------------------------------ bad model dirs

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("bad-models")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_from_model(dest: &Path, files: &[&str]) {
    let src = common::model_dir();
    for f in files {
        std::fs::copy(src.join(f), dest.join(f)).unwrap();
    }
}

fn config_err(dir: &Path) -> String {
    match LocalBert::load(dir) {
        Err(EmbedError::Config(m)) => m,
        Err(other) => panic!("expected a Config error, got {other:?}"),
        Ok(_) => panic!("loading {} should fail", dir.display()),
    }
}

#[test]
fn missing_directory_and_files_are_named() {
    let m = config_err(Path::new("/nonexistent/zentoria/model"));
    assert!(m.contains("does not exist"), "{m}");

    let d = scratch("empty");
    assert!(config_err(&d).contains("config.json"));

    let d = scratch("no-tokenizer");
    copy_from_model(&d, &["config.json"]);
    assert!(config_err(&d).contains("tokenizer.json"));

    let d = scratch("no-weights");
    copy_from_model(&d, &["config.json", "tokenizer.json"]);
    std::fs::write(d.join("pytorch_model.bin"), b"x").unwrap();
    let m = config_err(&d);
    assert!(
        m.contains("model.safetensors") && m.contains("pytorch_model.bin"),
        "{m}"
    );
}

#[test]
fn corrupt_files_are_errors_not_panics() {
    let d = scratch("bad-config");
    copy_from_model(&d, &["tokenizer.json"]);
    std::fs::write(d.join("config.json"), b"{not json").unwrap();
    std::fs::write(d.join("model.safetensors"), b"").unwrap();
    assert!(config_err(&d).contains("malformed"));

    let d = scratch("roberta");
    copy_from_model(&d, &["tokenizer.json"]);
    std::fs::write(d.join("config.json"), br#"{"model_type":"xlm-roberta"}"#).unwrap();
    std::fs::write(d.join("model.safetensors"), b"").unwrap();
    assert!(config_err(&d).contains("xlm-roberta"));

    let d = scratch("bad-tokenizer");
    copy_from_model(&d, &["config.json"]);
    std::fs::write(d.join("tokenizer.json"), b"[]").unwrap();
    std::fs::write(d.join("model.safetensors"), b"").unwrap();
    assert!(config_err(&d).contains("tokenizer.json"));

    let d = scratch("garbage-weights");
    copy_from_model(&d, &["config.json", "tokenizer.json"]);
    std::fs::write(d.join("model.safetensors"), b"\x08\0\0\0\0\0\0\0garbage!").unwrap();
    assert!(config_err(&d).contains("model.safetensors"));

    let d = scratch("wrong-weights");
    copy_from_model(&d, &["config.json", "tokenizer.json"]);
    // a valid safetensors file with no BERT tensors in it
    let header = br#"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    std::fs::write(d.join("model.safetensors"), bytes).unwrap();
    let m = config_err(&d);
    assert!(m.contains("BERT weights"), "{m}");

    let d = scratch("dense-module");
    copy_from_model(&d, &["config.json", "tokenizer.json", "model.safetensors"]);
    std::fs::write(
        d.join("modules.json"),
        br#"[{"path":"","type":"sentence_transformers.models.Transformer"},{"path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#,
    )
    .unwrap();
    assert!(config_err(&d).contains("Dense"));
}
