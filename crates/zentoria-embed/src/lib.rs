//! Sentence embeddings for Zentoria semantic search.
//!
//! An [`Embedder`] turns texts into L2-normalised `f32` vectors of a fixed
//! dimension. Three back-ends are offered:
//!
//! * [`LocalBert`]: a BERT-family sentence-transformers model (for example
//!   `all-MiniLM-L6-v2`) run in-process on the CPU with candle;
//! * [`RemoteEmbedder`]: a local or remote Ollama server (`POST /api/embed`),
//!   or OpenAI or any OpenAI-compatible server (`POST /v1/embeddings`),
//!   through the model providers' clients (`zentoria-providers`).
//!
//! Every back-end batches internally, keeps the order of its inputs and
//! returns unit-length vectors, so a dot product is a cosine similarity.
//! [`Embedder::id`] names model and provider; store it with the vectors so
//! that a change of embedder is detected.

#![forbid(unsafe_code)]

mod error;
mod local;
mod remote;

pub use error::EmbedError;
pub use local::{LocalBert, LocalOptions, Pooling};
pub use remote::{Counted, RemoteEmbedder, RemoteOptions};

/// An embedder: turns texts into L2-normalised f32 vectors of a fixed dimension.
#[derive(Clone)]
pub enum Embedder {
    /// A BERT-family model run in-process.
    Local(LocalBert),
    /// An Ollama or OpenAI-compatible server.
    Remote(RemoteEmbedder),
}

impl Embedder {
    /// Stable identity of model and provider, e.g. `local:all-MiniLM-L6-v2`,
    /// `ollama:nomic-embed-text`, `openai:text-embedding-3-small`.
    pub fn id(&self) -> String {
        match self {
            Embedder::Local(e) => e.id(),
            Embedder::Remote(e) => e.id(),
        }
    }

    /// Dimension of the vectors.
    ///
    /// For [`LocalBert`] it is known at load time (`hidden_size`). For remote
    /// embedders it is the value given in [`RemoteOptions::dimension`], or the
    /// one learnt from the first successful answer; it is `0` while still
    /// unknown — call [`Embedder::probe_dimension`] to learn it eagerly.
    pub fn dimension(&self) -> usize {
        match self {
            Embedder::Local(e) => e.dimension(),
            Embedder::Remote(e) => e.dimension(),
        }
    }

    /// Returns the dimension, asking the server with a one-word request if it
    /// is not known yet.
    pub async fn probe_dimension(&self) -> Result<usize, EmbedError> {
        match self {
            Embedder::Local(e) => Ok(e.dimension()),
            Embedder::Remote(e) => e.probe_dimension().await,
        }
    }

    /// Embeds `texts`, batching internally; the i-th vector belongs to the
    /// i-th text. An empty slice gives an empty result without any work.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        match self {
            Embedder::Local(e) => e.embed(texts).await,
            Embedder::Remote(e) => e.embed(texts).await,
        }
    }
}

impl From<LocalBert> for Embedder {
    fn from(e: LocalBert) -> Self {
        Embedder::Local(e)
    }
}

impl From<RemoteEmbedder> for Embedder {
    fn from(e: RemoteEmbedder) -> Self {
        Embedder::Remote(e)
    }
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("id", &self.id())
            .field("dimension", &self.dimension())
            .finish()
    }
}

/// Scales `v` to unit L2 norm in place. Returns `false` (and leaves `v`
/// untouched) when the norm is zero or not finite.
pub(crate) fn l2_normalize(v: &mut [f32]) -> bool {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return false;
    }
    for x in v.iter_mut() {
        *x = (f64::from(*x) / norm) as f32;
    }
    true
}

/// Cosine similarity of two vectors (dot product over the product of norms);
/// `0.0` when either is zero or the lengths differ.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na.sqrt() * nb.sqrt())) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_unit_and_zero() {
        let mut v = vec![3.0, 4.0];
        assert!(l2_normalize(&mut v));
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0.0, 0.0];
        assert!(!l2_normalize(&mut z));
        let mut n = vec![f32::NAN, 1.0];
        assert!(!l2_normalize(&mut n));
    }

    #[test]
    fn cosine_basics() {
        assert!((cosine_similarity(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine_similarity(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-6);
        assert_eq!(cosine_similarity(&[1.0], &[1.0, 2.0]), 0.0);
    }
}
