//! Search over the chunks a caller may see: BM25 keyword search always; semantic (vector) and
//! hybrid (both, fused by weighted reciprocal rank) when an embedder is configured.

use std::collections::HashMap;
use std::time::Instant;

use zentoria_core::{Error, Result, Scope};
use zentoria_platform::Principal;
use zentoria_store::repo::knowledge as repo;

use crate::fulltext::KeywordQuery;
use crate::vectors::{VectorQuery, Vectors};
use crate::{
    ChunkFilter, Citation, HybridSettings, Knowledge, SearchHit, SearchMode, SearchRequest,
    SearchResponse,
};

const MAX_TOP_K: usize = 100;
const MAX_QUERY_CHARS: usize = 4096;
/// Hybrid search fuses this many candidates from each ranking (at least).
const HYBRID_CANDIDATES: usize = 50;
/// How long a search waits for the vector index to finish loading at startup.
const LOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) const NO_EMBEDDER: &str = "semantic and hybrid search need an embedder, and none is \
    configured. Set knowledge.embedder (ZENTORIA_EMBEDDER) to \"local\" with \
    knowledge.embedder_model pointing at a sentence-transformers model directory (config.json, \
    tokenizer.json, model.safetensors), to \"ollama\" (model nomic-embed-text by default) or to \
    \"openai\" for any OpenAI-compatible /v1/embeddings; see docs/KNOWLEDGE.md. Until then use \
    mode \"keyword\".";

impl Knowledge {
    pub async fn search(&self, p: &Principal, req: SearchRequest) -> Result<SearchResponse> {
        p.require(Scope::FilesRead)?;
        let started = Instant::now();
        let query = req.query.trim();
        if query.is_empty() {
            return Err(Error::invalid("the query is empty"));
        }
        if query.chars().count() > MAX_QUERY_CHARS {
            return Err(Error::invalid(format!(
                "the query is longer than {MAX_QUERY_CHARS} characters"
            )));
        }
        let top_k = req.top_k.unwrap_or(10);
        if !(1..=MAX_TOP_K).contains(&top_k) {
            return Err(Error::invalid(format!(
                "top_k must be between 1 and {MAX_TOP_K}"
            )));
        }
        if let Some(m) = req.min_similarity
            && !(-1.0..=1.0).contains(&m)
        {
            return Err(Error::invalid("min_similarity must be between -1 and 1"));
        }
        for k in &req.filters.kinds {
            if k.parse::<zentoria_extract::Kind>().is_err() {
                return Err(Error::invalid(format!(
                    "unknown type {k:?} in filters.types; one of text, markdown, html, pdf, docx, csv, json, code"
                )));
            }
        }
        let (vectors, embedder) = match (req.mode, &self.inner.vectors, &self.inner.embedder) {
            (SearchMode::Keyword, _, _) => (None, None),
            (_, Some(v), Some(e)) => (Some(v), Some(e)),
            _ => return Err(Error::invalid(NO_EMBEDDER)),
        };
        let weights = self.weights(&req)?;
        if let Some(v) = &req.vector {
            if req.mode == SearchMode::Keyword {
                return Err(Error::invalid(
                    "vector is for semantic and hybrid search; keyword search takes the query only",
                ));
            }
            if v.is_empty() || v.len() > 8192 || v.iter().any(|x| !x.is_finite()) {
                return Err(Error::invalid("vector must hold 1 to 8192 finite numbers"));
            }
            let dim = vectors.map_or(0, Vectors::dimension);
            if dim != 0 && v.len() != dim {
                return Err(Error::invalid(format!(
                    "vector has {} dimensions; the embedder {} makes {dim}",
                    v.len(),
                    vectors.map_or("", Vectors::embedder)
                )));
            }
        }
        let collection = match &req.collection {
            Some(c) => Some(self.resolve_collection(p, c).await?.id),
            None => None,
        };
        let filter = ChunkFilter {
            owner: (!p.is_admin()).then(|| p.user_id.clone()),
            collection,
            kinds: req.filters.kinds.clone(),
            tags: req.filters.tags.clone(),
            file_ids: req.filters.file_ids.clone(),
        };
        let candidates = match req.mode {
            SearchMode::Hybrid => (top_k * 2).max(HYBRID_CANDIDATES),
            _ => top_k,
        };
        let keyword = async {
            if req.mode == SearchMode::Semantic {
                return Ok(Vec::new());
            }
            self.inner
                .fulltext
                .search(KeywordQuery {
                    text: query.to_owned(),
                    filter: filter.clone(),
                    limit: candidates,
                })
                .await
        };
        let semantic = async {
            let (Some(vectors), Some(embedder)) = (vectors, embedder) else {
                return Ok(Vec::new());
            };
            vectors.wait_loaded(LOAD_WAIT).await?;
            let vector = match &req.vector {
                Some(v) => v.clone(),
                None => embedder
                    .embed(&[query.to_owned()])
                    .await
                    .map_err(|e| Error::Upstream(format!("embedding the query failed: {e}")))?
                    .pop()
                    .ok_or_else(|| Error::bug("the embedder returned no vector"))?,
            };
            let mut near = vectors
                .search(VectorQuery {
                    vector,
                    filter: filter.clone(),
                    limit: candidates,
                })
                .await?;
            if let Some(min) = req.min_similarity {
                near.retain(|(_, similarity)| *similarity >= min);
            }
            Ok(near)
        };
        let (keyword, semantic) = tokio::join!(keyword, semantic);
        let (keyword, semantic) = (keyword?, semantic?);
        let ranked = match req.mode {
            SearchMode::Keyword => keyword,
            SearchMode::Semantic => semantic,
            SearchMode::Hybrid => fuse(&keyword, &semantic, &weights, top_k),
        };
        let hits = self.hydrate(&ranked).await?;
        let mode = match req.mode {
            SearchMode::Keyword => "keyword",
            SearchMode::Semantic => "semantic",
            SearchMode::Hybrid => "hybrid",
        };
        metrics::histogram!("zentoria_search_seconds", "mode" => mode)
            .record(started.elapsed().as_secs_f64());
        Ok(SearchResponse {
            query: query.to_owned(),
            mode: req.mode,
            hits,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The fusion weights: the configured ones, overridden per request.
    fn weights(&self, req: &SearchRequest) -> Result<HybridSettings> {
        let mut w = self.inner.settings.hybrid;
        if let Some(k) = req.keyword_weight {
            w.keyword_weight = k;
        }
        if let Some(s) = req.semantic_weight {
            w.semantic_weight = s;
        }
        for (name, v) in [
            ("keyword_weight", w.keyword_weight),
            ("semantic_weight", w.semantic_weight),
        ] {
            if !(0.0..=100.0).contains(&v) {
                return Err(Error::invalid(format!("{name} must be between 0 and 100")));
            }
        }
        if w.keyword_weight + w.semantic_weight <= 0.0 {
            return Err(Error::invalid(
                "keyword_weight and semantic_weight cannot both be 0",
            ));
        }
        Ok(w)
    }
    /// Turns ranked chunk ids into hits with their text, file and citation; chunks deleted
    /// since the index saw them are left out.
    async fn hydrate(&self, ranked: &[(i64, f32)]) -> Result<Vec<SearchHit>> {
        let ids: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
        let chunks = repo::chunks_by_ids(&self.inner.db, &ids).await?;
        let mut file_ids: Vec<String> = chunks.iter().map(|c| c.file_id.clone()).collect();
        file_ids.sort();
        file_ids.dedup();
        let files: HashMap<String, repo::FileRow> = repo::files_by_ids(&self.inner.db, &file_ids)
            .await?
            .into_iter()
            .map(|f| (f.id.clone(), f))
            .collect();
        let mut by_id: HashMap<i64, repo::ChunkRow> =
            chunks.into_iter().map(|c| (c.id, c)).collect();
        let mut hits = Vec::with_capacity(ranked.len());
        for (id, score) in ranked {
            let Some(c) = by_id.remove(id) else { continue };
            let Some(f) = files.get(&c.file_id) else {
                continue;
            };
            hits.push(SearchHit {
                chunk_id: c.id,
                file_id: c.file_id,
                file_name: f.name.clone(),
                collection_id: f.collection_id.clone(),
                text: c.text,
                score: *score,
                citation: Citation {
                    page: c.page,
                    start_char: c.start_char,
                    end_char: c.end_char,
                    heading: c.heading,
                    chunk_index: c.ord,
                },
            });
        }
        Ok(hits)
    }
}

/// Weighted reciprocal-rank fusion of two rankings (best first), cut to `top_k`.
pub(crate) fn fuse(
    keyword: &[(i64, f32)],
    semantic: &[(i64, f32)],
    w: &HybridSettings,
    top_k: usize,
) -> Vec<(i64, f32)> {
    let mut scores: HashMap<i64, f32> = HashMap::new();
    for (list, weight) in [(keyword, w.keyword_weight), (semantic, w.semantic_weight)] {
        for (rank, (id, _)) in list.iter().enumerate() {
            *scores.entry(*id).or_default() += weight / (w.rrf_k + rank as f32 + 1.0);
        }
    }
    let mut fused: Vec<(i64, f32)> = scores.into_iter().filter(|(_, s)| *s > 0.0).collect();
    // Ties broken by id, so equal inputs always give the same order.
    fused.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    fused.truncate(top_k);
    fused
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[(i64, f32)]) -> Vec<i64> {
        v.iter().map(|(id, _)| *id).collect()
    }

    #[test]
    fn fusion_rewards_agreement_and_respects_weights() {
        let keyword = [(1, 9.0), (2, 8.0), (3, 7.0)];
        let semantic = [(3, 0.9), (4, 0.8), (1, 0.7)];
        let even = HybridSettings::default();
        let fused = fuse(&keyword, &semantic, &even, 10);
        // 1 and 3 appear in both lists and lead; 1 ranks higher on average.
        assert_eq!(ids(&fused), vec![1, 3, 2, 4]);
        let semantic_only = HybridSettings {
            keyword_weight: 0.0,
            ..even
        };
        assert_eq!(
            ids(&fuse(&keyword, &semantic, &semantic_only, 10)),
            vec![3, 4, 1]
        );
        assert_eq!(fuse(&keyword, &semantic, &even, 2).len(), 2);
        assert!(fuse(&[], &[], &even, 5).is_empty());
    }

    #[test]
    fn fused_scores_follow_the_formula() {
        let w = HybridSettings {
            rrf_k: 60.0,
            keyword_weight: 2.0,
            semantic_weight: 1.0,
        };
        let fused = fuse(&[(7, 1.0)], &[(8, 1.0), (7, 0.5)], &w, 10);
        assert_eq!(fused[0].0, 7);
        assert!((fused[0].1 - (2.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-6);
        assert!((fused[1].1 - 1.0 / 61.0).abs() < 1e-6);
    }
}
