//! In-process BERT sentence embeddings (candle, CPU).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{EmbedError, l2_normalize};

const PROVIDER: &str = "local";

/// How token vectors are pooled into one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// Mean over the tokens of the attention mask (sentence-transformers'
    /// `pooling_mode_mean_tokens`; what all-MiniLM-L6-v2 uses).
    Mean,
    /// The first (`[CLS]`) token.
    Cls,
    /// Element-wise maximum over the tokens of the attention mask.
    Max,
    /// Sum over the mask divided by the square root of the token count.
    MeanSqrtLen,
}

/// Options for [`LocalBert::load_with`]. `None` means "as the model
/// directory says".
#[derive(Debug, Clone, Default)]
pub struct LocalOptions {
    /// Texts per forward pass (default 32).
    pub batch_size: Option<usize>,
    /// Name used in [`LocalBert::id`] (default: the directory's name).
    pub name: Option<String>,
    /// Maximum word pieces per text, special tokens included (default:
    /// `max_seq_length` of `sentence_bert_config.json`, else
    /// `max_position_embeddings`); never more than `max_position_embeddings`.
    pub max_seq_length: Option<usize>,
    /// Pooling (default: from `1_Pooling/config.json` via `modules.json`,
    /// else mean).
    pub pooling: Option<Pooling>,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    pad_id: u32,
}

/// A BERT-family sentence-embedding model (Hugging Face /
/// sentence-transformers layout) run in-process on the CPU.
#[derive(Clone)]
pub struct LocalBert {
    inner: Arc<Inner>,
    name: String,
    dimension: usize,
    max_seq_length: usize,
    batch_size: usize,
    pooling: Pooling,
    dir: PathBuf,
}

impl std::fmt::Debug for LocalBert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBert")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .field("dimension", &self.dimension)
            .field("max_seq_length", &self.max_seq_length)
            .field("batch_size", &self.batch_size)
            .field("pooling", &self.pooling)
            .finish()
    }
}

#[derive(Deserialize)]
struct SbertConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct TokenizerConfig {
    model_max_length: Option<f64>,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PoolingConfig {
    pooling_mode_cls_token: bool,
    pooling_mode_mean_tokens: bool,
    pooling_mode_max_tokens: bool,
    pooling_mode_mean_sqrt_len_tokens: bool,
    pooling_mode_weightedmean_tokens: bool,
    pooling_mode_lasttoken: bool,
}

fn read_required(dir: &Path, file: &str) -> Result<Vec<u8>, EmbedError> {
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EmbedError::Config(format!(
            "model directory {} has no {file} (expected config.json, tokenizer.json and model.safetensors, as in a Hugging Face / sentence-transformers download)",
            dir.display()
        ))),
        Err(e) => Err(EmbedError::Config(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn read_optional_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, EmbedError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EmbedError::Config(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| EmbedError::Config(format!("malformed {}: {e}", path.display())))
}

/// Reads `modules.json` (if any) and the pooling configuration it points to.
fn pooling_from_dir(dir: &Path) -> Result<Option<Pooling>, EmbedError> {
    let modules: Option<Vec<ModuleEntry>> = read_optional_json(&dir.join("modules.json"))?;
    let pooling_path = match &modules {
        Some(modules) => {
            let mut pooling_path = None;
            for m in modules {
                let short = m.kind.rsplit('.').next().unwrap_or(&m.kind);
                match short {
                    "Transformer" | "Normalize" => {}
                    "Pooling" => pooling_path = Some(dir.join(&m.path).join("config.json")),
                    other => {
                        return Err(EmbedError::Config(format!(
                            "{}: sentence-transformers module {other:?} ({}) is not supported; only Transformer, Pooling and Normalize are",
                            dir.join("modules.json").display(),
                            m.kind
                        )));
                    }
                }
            }
            pooling_path
        }
        None => {
            let p = dir.join("1_Pooling").join("config.json");
            p.exists().then_some(p)
        }
    };
    let Some(path) = pooling_path else {
        return Ok(None);
    };
    let Some(cfg) = read_optional_json::<PoolingConfig>(&path)? else {
        return Ok(None);
    };
    let modes = [
        (cfg.pooling_mode_mean_tokens, Some(Pooling::Mean), "mean"),
        (cfg.pooling_mode_cls_token, Some(Pooling::Cls), "cls"),
        (cfg.pooling_mode_max_tokens, Some(Pooling::Max), "max"),
        (
            cfg.pooling_mode_mean_sqrt_len_tokens,
            Some(Pooling::MeanSqrtLen),
            "mean_sqrt_len",
        ),
        (cfg.pooling_mode_weightedmean_tokens, None, "weightedmean"),
        (cfg.pooling_mode_lasttoken, None, "lasttoken"),
    ];
    let on: Vec<_> = modes.iter().filter(|m| m.0).collect();
    match on.as_slice() {
        [] => Ok(None),
        [(_, Some(p), _)] => Ok(Some(*p)),
        [(_, None, name)] => Err(EmbedError::Config(format!(
            "{}: pooling mode {name} is not supported (use mean, cls, max or mean_sqrt_len)",
            path.display()
        ))),
        _ => Err(EmbedError::Config(format!(
            "{}: several pooling modes at once ({}) are not supported",
            path.display(),
            on.iter().map(|m| m.2).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn candle_err(context: &str, e: candle_core::Error) -> EmbedError {
    EmbedError::Config(format!("{context}: {e}"))
}

impl LocalBert {
    /// Loads a model from a directory holding `config.json`,
    /// `tokenizer.json` and `model.safetensors` (and optionally the
    /// sentence-transformers files `modules.json`, `1_Pooling/config.json`,
    /// `sentence_bert_config.json`).
    pub fn load(dir: &Path) -> Result<LocalBert, EmbedError> {
        Self::load_with(dir, LocalOptions::default())
    }

    /// Like [`LocalBert::load`], with options.
    pub fn load_with(dir: &Path, options: LocalOptions) -> Result<LocalBert, EmbedError> {
        if !dir.is_dir() {
            return Err(EmbedError::Config(format!(
                "model directory {} does not exist or is not a directory",
                dir.display()
            )));
        }
        if options.batch_size == Some(0) {
            return Err(EmbedError::Config("batch size must be at least 1".into()));
        }

        let config_bytes = read_required(dir, "config.json")?;
        let tokenizer_bytes = read_required(dir, "tokenizer.json")?;
        if !dir.join("model.safetensors").is_file() {
            let hint = if dir.join("pytorch_model.bin").exists() {
                " (only pytorch_model.bin is there; convert it to safetensors)"
            } else {
                ""
            };
            return Err(EmbedError::Config(format!(
                "model directory {} has no model.safetensors{hint}",
                dir.display()
            )));
        }

        let value: serde_json::Value = serde_json::from_slice(&config_bytes).map_err(|e| {
            EmbedError::Config(format!(
                "malformed {}: {e}",
                dir.join("config.json").display()
            ))
        })?;
        if let Some(mt) = value.get("model_type").and_then(|v| v.as_str())
            && mt != "bert"
        {
            return Err(EmbedError::Config(format!(
                "{}: model_type {mt:?} is not supported; only BERT models (model_type \"bert\") are",
                dir.join("config.json").display()
            )));
        }
        let config: BertConfig = serde_json::from_value(value).map_err(|e| {
            EmbedError::Config(format!(
                "{} is not a usable BERT config: {e}",
                dir.join("config.json").display()
            ))
        })?;
        if config.hidden_size == 0 || config.max_position_embeddings < 2 {
            return Err(EmbedError::Config(format!(
                "{}: hidden_size / max_position_embeddings out of range",
                dir.join("config.json").display()
            )));
        }

        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes).map_err(|e| {
            EmbedError::Config(format!(
                "cannot load {}: {e}",
                dir.join("tokenizer.json").display()
            ))
        })?;

        let sbert: Option<SbertConfig> =
            read_optional_json(&dir.join("sentence_bert_config.json"))?;
        let tok_cfg: Option<TokenizerConfig> =
            read_optional_json(&dir.join("tokenizer_config.json"))?;
        let max_pos = config.max_position_embeddings;
        let max_seq_length = match (options.max_seq_length, sbert.and_then(|s| s.max_seq_length)) {
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => {
                let tok_max = tok_cfg
                    .and_then(|t| t.model_max_length)
                    .filter(|m| m.is_finite() && *m >= 2.0 && *m < 1e9)
                    .map(|m| m as usize);
                tok_max.map_or(max_pos, |t| t.min(max_pos))
            }
        }
        .min(max_pos);
        if max_seq_length < 2 {
            return Err(EmbedError::Config(format!(
                "maximum sequence length {max_seq_length} is too small"
            )));
        }
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Config(format!("cannot set truncation: {e}")))?;
        tokenizer.with_padding(None);

        let pooling = match options.pooling {
            Some(p) => p,
            None => pooling_from_dir(dir)?.unwrap_or(Pooling::Mean),
        };

        let device = Device::Cpu;
        let weights_path = dir.join("model.safetensors");
        let weights = std::fs::read(&weights_path).map_err(|e| {
            EmbedError::Config(format!("cannot read {}: {e}", weights_path.display()))
        })?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| candle_err(&format!("cannot parse {}", weights_path.display()), e))?;
        let model = BertModel::load(vb, &config).map_err(|e| {
            candle_err(
                &format!(
                    "{} does not hold the BERT weights config.json describes",
                    weights_path.display()
                ),
                e,
            )
        })?;

        let pad_id = u32::try_from(config.pad_token_id).unwrap_or(0);
        let name = options.name.unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        });

        Ok(LocalBert {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                device,
                pad_id,
            }),
            name,
            dimension: config.hidden_size,
            max_seq_length,
            batch_size: options.batch_size.unwrap_or(32),
            pooling,
            dir: dir.to_path_buf(),
        })
    }

    /// `local:<name>`, e.g. `local:all-MiniLM-L6-v2`.
    pub fn id(&self) -> String {
        format!("{PROVIDER}:{}", self.name)
    }

    /// Vector dimension (`hidden_size` of `config.json`).
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Word pieces per text (special tokens included) beyond which input is cut.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Texts per forward pass.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Sets the number of texts per forward pass (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Number of word pieces (special tokens included, after truncation)
    /// each text becomes.
    pub fn token_counts(&self, texts: &[String]) -> Result<Vec<usize>, EmbedError> {
        Ok(self.tokenize(texts)?.iter().map(Vec::len).collect())
    }

    fn tokenize(&self, texts: &[String]) -> Result<Vec<Vec<u32>>, EmbedError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .inner
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbedError::Invalid(format!("local tokenizer failed: {e}")))?;
        Ok(encodings
            .into_iter()
            .map(|enc| enc.get_ids().to_vec())
            .collect())
    }

    /// Embeds `texts` synchronously on the calling thread. Prefer
    /// [`LocalBert::embed`] from async code.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids = self.tokenize(texts)?;
        let order = length_order(&ids);
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let vectors = self.forward_batch(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// Embeds `texts` (see [`crate::Embedder::embed`]); tokenisation and each
    /// batch's forward pass run on tokio's blocking thread pool.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let this = self.clone();
        let owned = texts.to_vec();
        let ids = run_blocking(move || this.tokenize(&owned)).await?;
        let ids = Arc::new(ids);
        let order = length_order(&ids);
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.batch_size) {
            let this = self.clone();
            let ids = Arc::clone(&ids);
            let chunk_owned = chunk.to_vec();
            let vectors = run_blocking(move || {
                let batch: Vec<&[u32]> = chunk_owned.iter().map(|&i| ids[i].as_slice()).collect();
                this.forward_batch(&batch)
            })
            .await?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One padded forward pass + pooling + normalisation.
    fn forward_batch(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let fail = |e: candle_core::Error| EmbedError::Upstream {
            provider: PROVIDER.into(),
            status: None,
            message: format!("forward pass of {} failed: {e}", self.name),
        };
        let n = batch.len();
        let seq = batch.iter().map(|b| b.len()).max().unwrap_or(0).max(1);
        let mut input_ids = Vec::with_capacity(n * seq);
        let mut mask = Vec::with_capacity(n * seq);
        for ids in batch {
            input_ids.extend_from_slice(ids);
            input_ids.extend(std::iter::repeat_n(self.inner.pad_id, seq - ids.len()));
            mask.extend(std::iter::repeat_n(1u32, ids.len()));
            mask.extend(std::iter::repeat_n(0u32, seq - ids.len()));
        }
        let dev = &self.inner.device;
        let input_ids = Tensor::from_vec(input_ids, (n, seq), dev).map_err(fail)?;
        let mask = Tensor::from_vec(mask, (n, seq), dev).map_err(fail)?;
        let token_type_ids = input_ids.zeros_like().map_err(fail)?;
        let hidden = self
            .inner
            .model
            .forward(&input_ids, &token_type_ids, Some(&mask))
            .map_err(fail)?;
        let pooled = pool(&hidden, &mask, self.pooling).map_err(fail)?;
        let mut vectors = pooled.to_vec2::<f32>().map_err(fail)?;
        for v in &mut vectors {
            if !l2_normalize(v) {
                return Err(EmbedError::Invalid(format!(
                    "local model {} produced a zero or non-finite vector",
                    self.name
                )));
            }
        }
        Ok(vectors)
    }
}

/// Indices sorted by descending length, so that each batch pads little.
fn length_order(ids: &[Vec<u32>]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    order
}

fn pool(hidden: &Tensor, mask: &Tensor, pooling: Pooling) -> candle_core::Result<Tensor> {
    // hidden: (n, seq, h); mask: (n, seq) u32
    let mask_f = mask.to_dtype(DType::F32)?;
    let mask3 = mask_f.unsqueeze(2)?; // (n, seq, 1)
    match pooling {
        Pooling::Cls => hidden.i((.., 0, ..))?.contiguous(),
        Pooling::Mean | Pooling::MeanSqrtLen => {
            let summed = hidden.broadcast_mul(&mask3)?.sum(1)?; // (n, h)
            let counts = mask_f.sum_keepdim(1)?.clamp(1e-9f32, f32::MAX)?; // (n, 1)
            let denom = if pooling == Pooling::Mean {
                counts
            } else {
                counts.sqrt()?
            };
            summed.broadcast_div(&denom)
        }
        Pooling::Max => {
            // masked positions get -1e9, as sentence-transformers does
            let penalty = ((mask3.clone() - 1.0)? * 1e9)?;
            hidden.broadcast_add(&penalty)?.max(1)
        }
    }
}

async fn run_blocking<T, F>(f: F) -> Result<T, EmbedError>
where
    F: FnOnce() -> Result<T, EmbedError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EmbedError::Upstream {
            provider: PROVIDER.into(),
            status: None,
            message: format!("embedding worker thread failed: {e}"),
        })?
}
